"""The root keyring: read from the file named by hush.root_key_file.

The path comes from hush._root_key_file(), which reads pg_file_settings (the
server's configuration files, ALTER SYSTEM included) and ignores session SETs,
so a role cannot point hush at a keyring of its choosing. The keys are cached
in a dictionary private to this backend's PL/Python; SQL only ever sees key ids.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from typing import Any

from .errors import KEY_UNAVAILABLE, Fail

KEY_BYTES = 32
CACHE = "hush keyring"
SETTING_HINT = "Set hush.root_key_file in postgresql.conf (or with ALTER SYSTEM) and reload; see the README."


def key_id(key: bytes) -> str:
    """A key's public name: BLAKE2b-128 of the key, personalised for hush."""
    return hashlib.blake2b(key, digest_size=16, person=b"hush-root-key").hexdigest()


def parse(text: str, path: str) -> dict[str, bytes]:
    """One base64 32-byte key per line; blank lines and # comments allowed.
    Errors name the line, never its content."""
    keys: dict[str, bytes] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise Fail(KEY_UNAVAILABLE, "root key file %s, line %d: not a base64-encoded 32-byte key" % (path, n),
                       hint="Generate a key with `make keygen` (or tools/keygen.py).")
        keys[key_id(key)] = key
    if not keys:
        raise Fail(KEY_UNAVAILABLE, "root key file %s holds no key" % path, hint=SETTING_HINT)
    return keys


def read_file(path: str) -> dict[str, bytes]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise Fail(KEY_UNAVAILABLE, "root key file %s does not exist" % path, hint=SETTING_HINT) from None
    except OSError as e:
        raise Fail(KEY_UNAVAILABLE, "root key file %s cannot be read: %s" % (path, e.strerror)) from None
    if not stat.S_ISREG(st.st_mode):
        raise Fail(KEY_UNAVAILABLE, "root key file %s is not a regular file" % path)
    if st.st_mode & 0o077:
        raise Fail(KEY_UNAVAILABLE, "root key file %s is readable or writable by group or others (mode %o)"
                   % (path, stat.S_IMODE(st.st_mode)),
                   hint="chmod 600 the file; it should be owned by the server's OS user.")
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise Fail(KEY_UNAVAILABLE, "root key file %s is not ASCII text" % path) from None
    except OSError as e:
        raise Fail(KEY_UNAVAILABLE, "root key file %s cannot be read: %s" % (path, e.strerror)) from None
    return parse(text, path)


def load(plpy: Any, GD: dict, fresh: bool = False) -> dict[str, bytes]:
    """The keyring of this backend, read once (again when `fresh`); failures are
    not cached, so a fixed file is picked up by the next call."""
    keys = None if fresh else GD.get(CACHE)
    if keys is None:
        path = plpy.execute("SELECT hush._root_key_file() AS path")[0]["path"]
        if not path:
            raise Fail(KEY_UNAVAILABLE, "hush.root_key_file is not set in the server configuration", hint=SETTING_HINT)
        keys = read_file(path)
        GD[CACHE] = keys
    return keys


def get(plpy: Any, GD: dict, kid: str) -> bytes:
    key = load(plpy, GD).get(kid)
    if key is None and CACHE in GD:  # a key added to the file since this backend read it
        key = load(plpy, GD, fresh=True).get(kid)
    if key is None:
        raise Fail(KEY_UNAVAILABLE, "root key %s is not in the server's keyring" % kid,
                   hint="Add the key with this id back to the keyring file and reconnect.")
    return key
