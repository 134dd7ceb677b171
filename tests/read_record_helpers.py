"""What the read-record tests share (test_read_records.py,
test_read_records_recorder.py, and a few others): the value read, the audit rows written
since a point, the recorder's settings in the server's configuration, and a record body
signed as hush signs it."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from helpers import last_audit_id, rows, save

VALUE = "read-record-canary-4f1e"


def save_value(db: Any) -> int:
    """alice saves VALUE as acme's `k`; the audit id the test's own rows come after."""
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    return last_audit_id(db)


def records(db: Any, since: int) -> list[dict]:
    with db.connect("audrey") as aud:  # the auditor reads the table itself
        return rows(aud, "SELECT *, hush.caller_xact(detail) AS caller_xact FROM hush.audit_log "
                         "WHERE id > %s ORDER BY id", [since])


@contextmanager
def recorder_settings(db: Any, **settings: str) -> Iterator[None]:
    """hush.recorder_* in the server's configuration for the backends started inside."""
    with db.connect() as su:
        for name, value in settings.items():  # SET first: ALTER SYSTEM knows no placeholder yet (42704)
            su.execute(f"SET hush.recorder_{name} = '{value}'")
            su.execute(f"ALTER SYSTEM SET hush.recorder_{name} = '{value}'")
        su.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with db.connect() as su:
            for name, value in settings.items():
                su.execute(f"SET hush.recorder_{name} = '{value}'")
                su.execute(f"ALTER SYSTEM RESET hush.recorder_{name}")
            su.execute("SELECT pg_reload_conf()")


def signed_body(dbf: Any, **over: Any) -> tuple[str, bytes, str]:
    """A record body and MAC made as hush makes them: only with the keyring, which here the
    test holds (as the server's OS user would)."""
    import base64
    import hashlib
    import json
    import os as _os
    from test_keys import key_id
    line = dbf.cluster.key_lines[0]
    key = base64.b64decode(line)
    nonce = _os.urandom(16).hex()
    # alice may read acme's names: hush._record asks the reader's grants again (recheck.py).
    payload = {"tenant": "acme", "db_role": "alice", "session_role": "alice", "application_name": "",
               "client_addr": None, "rows": [["read", None, "k", 1, {}]], "key_id": key_id(line), "nonce": nonce,
               "db": dbf.name, "at": int(time.time())}
    payload.update(over)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    mac = hashlib.blake2b(body.encode(), key=key, digest_size=32, person=b"hush-read-record").digest()
    receipt = hashlib.blake2b(b"recorded " + nonce.encode(), key=key, digest_size=32,
                              person=b"hush-read-record").hexdigest()
    return body, mac, receipt
