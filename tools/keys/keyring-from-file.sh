#!/bin/sh
# hush.root_key_command sample: print a keyring kept in a file only the server's
# OS user can read. postgresql.conf:
#   hush.root_key_command = '/usr/local/lib/hush/keyring-from-file.sh /etc/postgresql/hush/root.keys'
# hush runs it as the server's OS user, with no shell, and reads its standard
# output (one base64 32-byte key per line); it never shows that output anywhere.
# Its only argument is a path: every database role can read the setting (SHOW),
# so a command line never carries a credential.
set -eu
file=${1:?usage: keyring-from-file.sh KEYRING_FILE}
case $(stat -c %a "$file") in
    *00) ;;
    *) echo "keyring-from-file.sh: $file is readable by group or others" >&2; exit 2 ;;
esac
exec cat -- "$file"
