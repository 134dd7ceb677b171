"""The root keyring: the output of hush.root_key_command when it is set, else
the file named by hush.root_key_file.

Both settings come from pg_file_settings (the server's configuration files,
ALTER SYSTEM included) through a superuser-owned reader that only hush_owner
may call, and session SETs are ignored, so a role cannot point hush at a
keyring of its choosing. The reader runs in a privileged step: only
hush_owner may call it. The keys are cached in a dictionary private to this
backend's PL/Python; SQL only ever sees key ids.

The settings themselves are readable by any role (SHOW, current_setting()), as
every setting no loaded module defines is: a command line must hold no
credential. Why a keyring failed to load names its file or program, which is
for admins only: application roles get "the keyring could not be loaded",
the reason goes to the server log, and an admin reads it in
hush.root_key_status() (load(reveal=True)).
"""
from __future__ import annotations

import binascii
import os
import stat

from . import privileged
from .errors import KEY_UNAVAILABLE, Fail

try:  # hashlib's own import (OpenSSL) costs a new connection ~1 ms; BLAKE2 is built into CPython
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - another Python
    from hashlib import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

KEY_BYTES = 32
# The keyring this backend read, under CACHE: module state lives as long as the backend
# (the package is loaded once per backend and version), so no caller passes it in.
CACHE = "hush keyring"
_memo: dict = {}
SETTING_HINT = ("Set hush.root_key_file (or hush.root_key_command) in postgresql.conf or with ALTER SYSTEM; "
                "see docs/install.md.")
HIDDEN_HINT = "An admin sees why in hush.root_key_status() (hush keys status) and in the server log."
COMMAND_TIMEOUT = 30


def key_id(key: bytes) -> str:
    """A key's public name: BLAKE2b-128 of the key, personalised for hush."""
    return blake2b(key, digest_size=16, person=b"hush-root-key").hexdigest()


def parse(text: str, path: str, source: str = "root key file") -> dict[str, bytes]:
    """One base64 32-byte key per line; blank lines and # comments allowed.
    Errors name the line, never its content."""
    keys: dict[str, bytes] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = binascii.a2b_base64(line, strict_mode=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise Fail(KEY_UNAVAILABLE, "%s %s, line %d: not a base64-encoded 32-byte key" % (source, path, n),
                       hint="Generate a key with `make keygen` (or tools/keygen.py).")
        keys[key_id(key)] = key
    if not keys:
        raise Fail(KEY_UNAVAILABLE, "%s %s holds no key" % (source, path), hint=SETTING_HINT)
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


def run_command(command: str) -> dict[str, bytes]:
    """The keyring a command prints. Messages name the program only: neither its
    arguments (they may hold a credential) nor its output reach them."""
    import shlex  # here: a key file needs neither (subprocess costs a new connection ~4 ms)
    import subprocess
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    if not argv:
        raise Fail(KEY_UNAVAILABLE, "hush.root_key_command cannot be parsed", hint=SETTING_HINT)
    program = argv[0]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Fail(KEY_UNAVAILABLE, "root key command %s did not finish within %d s" % (program, COMMAND_TIMEOUT)) \
            from None
    except OSError as e:
        raise Fail(KEY_UNAVAILABLE, "root key command %s cannot be run: %s" % (program, e.strerror)) from None
    if done.returncode != 0:
        raise Fail(KEY_UNAVAILABLE, "root key command %s exited with status %d" % (program, done.returncode),
                   hint="Run it as the server's OS user to see why; hush does not show its output.")
    try:
        text = done.stdout.decode("ascii")
    except UnicodeDecodeError:
        raise Fail(KEY_UNAVAILABLE, "root key command %s printed something that is not ASCII" % program) from None
    return parse(text, program, "root key command")


def load(plpy: Any, fresh: bool = False, reveal: bool = False) -> dict[str, bytes]:
    """The keyring of this backend, read once (again when `fresh`); failures are
    not cached, so a fixed file is picked up by the next call. Why it failed
    (a path, a program) is told only with `reveal` (admin functions), else
    written to the server log."""
    keys = None if fresh else _memo.get(CACHE)
    if keys is None:
        try:
            keys = _read(plpy)
        except Fail as f:
            if reveal:
                raise
            log_privately(plpy, "hush: the root keyring could not be loaded: %s" % f.message)
            raise Fail(KEY_UNAVAILABLE, "the root keyring could not be loaded", hint=HIDDEN_HINT) from None
        _memo[CACHE] = keys
    return keys


def _read(plpy: Any) -> dict[str, bytes]:
    row = privileged.call(plpy, privileged.OWNER, _source)
    if row["command"]:
        return run_command(row["command"])
    if row["file"]:
        return read_file(row["file"])
    raise Fail(KEY_UNAVAILABLE, "hush.root_key_file is not set in the server configuration", hint=SETTING_HINT)


def log_privately(plpy: Any, message: str) -> None:
    """A line for the server log only. A LOG line also reaches a client that set
    client_min_messages = log, so it is raised above that for the one line."""
    was = plpy.execute("SELECT pg_catalog.current_setting('client_min_messages') AS v")[0]["v"]
    plpy.execute("SELECT pg_catalog.set_config('client_min_messages', 'error', true)")
    try:
        plpy.log(message)
    finally:
        plpy.execute(plpy.prepare("SELECT pg_catalog.set_config('client_min_messages', $1, true)",
                                  ["pg_catalog.text"]), [was])


@privileged.step(privileged.OWNER)
def _source(plpy: Any, caller: str) -> dict:
    """Where the keyring comes from (command, file), read as hush_owner for any caller:
    loading the keyring into this backend hands the caller nothing."""
    return dict(plpy.execute("SELECT s.command, s.file FROM hush._root_key_source() s")[0])


def get(plpy: Any, kid: str, reveal: bool = False) -> bytes:
    key = load(plpy, reveal=reveal).get(kid)
    if key is None and CACHE in _memo:  # a key added to the file since this backend read it
        key = load(plpy, fresh=True, reveal=reveal).get(kid)
    if key is None:
        raise Fail(KEY_UNAVAILABLE, "root key %s is not in the server's keyring" % kid,
                   hint="Add the key with this id back to the keyring file and reconnect.")
    return key
