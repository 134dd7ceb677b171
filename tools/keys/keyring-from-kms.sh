#!/bin/sh
# hush.root_key_command sample (a template): the keyring is stored encrypted
# under a KMS key, and decrypted at connection time, so it never rests in clear
# on the database host. Shown with the AWS CLI; gcloud kms decrypt, az keyvault
# or vault kv get plug in the same way: whatever prints the keyring on stdout.
#   hush.root_key_command = '/usr/local/lib/hush/keyring-from-kms.sh /etc/postgresql/hush/root.keys.kms'
# The server's OS user needs KMS credentials (an instance role, not a file of
# secrets next to the keyring). Make the keyring blob once with:
#   aws kms encrypt --key-id alias/hush --plaintext fileb://root.keys \
#       --query CiphertextBlob --output text | base64 -d > root.keys.kms
set -eu
blob=${1:?usage: keyring-from-kms.sh ENCRYPTED_KEYRING}
aws kms decrypt --ciphertext-blob "fileb://$blob" --query Plaintext --output text | base64 -d
