"""Print one new root key as a keyring line: base64 of 32 random bytes.

Usage: python3 tools/keygen.py >> /etc/postgresql/hush.keys   (then chmod 0600, owner postgres)
The key id hush shows for it is printed on stderr, so stdout stays a clean keyring line.
"""
import base64
import secrets
import sys
from pathlib import Path

# The extension's own key-id derivation (keyring.py needs only the standard library).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plpython"))
from hush_plpy.keyring import key_id  # noqa: E402

key = secrets.token_bytes(32)
print(base64.b64encode(key).decode())
print(f"key id: {key_id(key)}", file=sys.stderr)
