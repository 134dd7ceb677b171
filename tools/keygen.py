"""Print one new root key as a keyring line: base64 of 32 random bytes.

Usage: python3 tools/keygen.py >> /etc/postgresql/hush.keys   (then chmod 0600, owner postgres)
The key id hush shows for it is printed on stderr, so stdout stays a clean keyring line.
"""
import base64
import hashlib
import secrets
import sys

key = secrets.token_bytes(32)
# Same derivation as plpython/hush_plpy/keyring.py:key_id (BLAKE2b, 16 bytes, personalised).
key_id = hashlib.blake2b(key, digest_size=16, person=b"hush-root-key").hexdigest()
print(base64.b64encode(key).decode())
print(f"key id: {key_id}", file=sys.stderr)
