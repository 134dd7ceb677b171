"""A DBOS app that keeps its partner credentials in hush.

The workflow `sync_partner(tenant)` follows the usual durable-workflow pattern (read a
credential, call an HTTP API with it, store what comes back as a secret) in a
way that keeps secret values out of DBOS's checkpoint tables. DBOS stores the
return value of every transaction and step, and the inputs of every workflow,
in clear (pickled) in its own tables: a value that crosses one of those
boundaries is written there for good. So:

1. `check_api_key`, a DBOS transaction, reads the API key through
   `hush.Secrets(ds.sql_session(), tenant)`: the read and its audit row are
   part of the transaction. It returns the key's version, never its value.
2. `exchange_token`, a DBOS step, reads that version of the key itself through
   hush, calls the partner API with it, and saves the token it gets back as a
   new version of `partner/access_token` in a transaction of its own,
   committed before the step returns. It returns the token's version and the
   partner account id: nothing secret.
3. `record_sync`, a DBOS transaction, checks the new version through hush and
   records the sync in the app's own table.

Run: APP_DATABASE_URL=postgresql+psycopg://app@/db?host=...  DBOS_SYSTEM_DATABASE_URL=...
     PARTNER_URL=http://127.0.0.1:8000  python app.py sync TENANT
The app's role needs hush_writer and a grant on TENANT (hush grant ROLE TENANT).
"""
from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import hush
import sqlalchemy as sa
from dbos import DBOS, SQLAlchemyDatasource

ds = SQLAlchemyDatasource.create(os.environ["APP_DATABASE_URL"], run_migrations=False)
DBOS(config={"name": "hush-dbos-example", "system_database_url": os.environ["DBOS_SYSTEM_DATABASE_URL"]})
PARTNER_URL = os.environ.get("PARTNER_URL", "http://127.0.0.1:8000")


@ds.transaction()
def check_api_key(tenant: str) -> int:
    key = hush.Secrets(ds.sql_session(), tenant).get("partner/api_key")  # audited in this transaction
    return key.version  # never key.value: DBOS would checkpoint it


@DBOS.step()
def exchange_token(tenant: str, key_version: int) -> dict[str, Any]:
    with ds.engine.begin() as conn:
        api_key = hush.Secrets(conn, tenant).get("partner/api_key", version=key_version).value
    request = urllib.request.Request(PARTNER_URL + "/token", method="POST", data=b"",
                                     headers={"Authorization": "Bearer " + api_key})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=int(body["expires_in"]))
    with ds.engine.begin() as conn:  # committed here: the value never leaves this step
        saved = hush.Secrets(conn, tenant).save("partner/access_token", body["access_token"], kind="token",
                                                expires_at=expires_at, metadata={"account": body["account"]})
    return {"token_version": saved.version, "account": body["account"], "expires_at": expires_at.isoformat()}


@ds.transaction()
def record_sync(tenant: str, token_version: int, account: str) -> None:
    session = ds.sql_session()
    current = [v.version for v in hush.Secrets(session, tenant).versions("partner/access_token") if v.is_current]
    if current != [token_version]:
        raise RuntimeError(f"partner/access_token moved on to version {current} meanwhile")
    session.execute(sa.text("INSERT INTO partner_syncs (tenant, account, token_version) VALUES (:t, :a, :v)"),
                    {"t": tenant, "a": account, "v": token_version})


@DBOS.workflow()
def sync_partner(tenant: str) -> dict[str, Any]:
    key_version = check_api_key(tenant)
    result = exchange_token(tenant, key_version)
    record_sync(tenant, result["token_version"], result["account"])
    return result


@ds.transaction()
def save_then_fail(tenant: str, name: str) -> None:
    """A transaction that saves a secret and then fails: the save and its audit row roll back with it."""
    hush.Secrets(ds.sql_session(), tenant).save(name, secrets.token_urlsafe(24))
    raise RuntimeError("something failed after the save")


def main() -> None:
    command, tenant = sys.argv[1], sys.argv[2]
    DBOS.launch()
    try:
        if command == "sync":
            print(json.dumps(sync_partner(tenant)))
        elif command == "fail":
            try:
                save_then_fail(tenant, sys.argv[3])
            except RuntimeError as e:
                print(json.dumps({"failed": str(e)}))
        else:
            raise SystemExit(f"unknown command {command!r}: sync TENANT | fail TENANT NAME")
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main()
