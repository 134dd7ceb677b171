#!/bin/sh
# hush.root_key_command sample (a template): the keyring is stored encrypted
# under a KMS key, and decrypted at connection time, so it never rests in clear
# on the database host. Shown with the AWS CLI; gcloud kms decrypt, az keyvault
# or vault kv get plug in the same way: whatever prints the keyring on stdout.
#   hush.root_key_command = '/usr/local/lib/hush/keyring-from-kms.sh /etc/postgresql/hush/root.keys.kms'
# Never a credential in that command line: every database role can read
# hush.root_key_command (SHOW). The server's OS user finds its KMS credentials
# in its environment (an instance role; systemd's EnvironmentFile= for the
# PostgreSQL unit), or else in the credentials file below, which only it can
# read (chmod 600, owned by postgres). Make the keyring blob once with:
#   aws kms encrypt --key-id alias/hush --plaintext fileb://root.keys \
#       --query CiphertextBlob --output text | base64 -d > root.keys.kms
set -eu
blob=${1:?usage: keyring-from-kms.sh ENCRYPTED_KEYRING}
credentials=/etc/postgresql/hush/aws-credentials
if [ -z "${AWS_SHARED_CREDENTIALS_FILE:-}" ] && [ -r "$credentials" ]; then
    case $(stat -c %a "$credentials") in
        *00) export AWS_SHARED_CREDENTIALS_FILE="$credentials" ;;
        *) echo "keyring-from-kms.sh: $credentials is readable by group or others" >&2; exit 2 ;;
    esac
fi
aws kms decrypt --ciphertext-blob "fileb://$blob" --query Plaintext --output text | base64 -d
