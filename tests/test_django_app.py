"""examples/django_app end to end, as the docs' "Django" recipe sets it up:
its management command and `runserver` as alice (a non-superuser, so row security
applies) on the test cluster, Django's own test runner cloning a template
database where hush is installed, the statement log (log_statement = 'all' for
the whole session) scanned for the values, and Django's default backend, which
binds parameters on the client, refused."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import runpy
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import hush
import psycopg
import pytest

from docs_text import section
from hush.devcluster import free_port

APP = Path(__file__).resolve().parent.parent / "examples" / "django_app"
SIGNING_SECRET = "webhooks/signing_secret"


def signature(secret: str, body: bytes) -> str:
    """What the partner sends: HMAC-SHA256 of the body under the signing secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def django_env(cluster: Any, dbname: str, user: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PG"))}
    return {**env, "DJANGO_DB_NAME": dbname, "DJANGO_DB_USER": user, "DJANGO_DB_HOST": str(cluster.base),
            "DJANGO_DB_PORT": str(cluster.port), **extra}


def manage(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(APP / "manage.py"), *args], cwd=APP, env=env, input=stdin,
                          capture_output=True, text=True, timeout=180)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


@pytest.fixture
def site(db: Any, cluster: Any) -> dict[str, str]:
    """The app's tables, made by a privileged role (DBOS's split: migrate as the owner,
    run as the app's role), and the environment that runs the app as alice."""
    ok(manage(django_env(cluster, db.name, "postgres"), "migrate", "-v", "0"))
    db.sql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO alice")
    db.sql("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO alice")
    return django_env(cluster, db.name, "alice")


@pytest.fixture
def server(site: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`manage.py runserver` as alice: each request on its own Django connection, closed after it."""
    port = free_port()
    with open(tmp_path / "runserver.log", "w+") as out:
        proc = subprocess.Popen([sys.executable, str(APP / "manage.py"), "runserver", "--noreload",
                                 f"127.0.0.1:{port}"], cwd=APP, env=site, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    out.seek(0)
                    assert proc.poll() is None, "runserver exited:\n" + out.read()[-3000:]
                    assert time.monotonic() < deadline, "runserver did not listen:\n" + out.read()[-3000:]
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def connect_partner(server: str, tenant: str, partner: str, api_key: str) -> tuple[int, Any]:
    return post(f"{server}/partners/{tenant}/{partner}/", json.dumps({"api_key": api_key}).encode())


def audit(db: Any, name: str) -> list[tuple]:
    return db.sql("SELECT db_role, action, version FROM hush.audit_log "
                  "WHERE secret_name = %s AND outcome = 'ok' ORDER BY id", [name])


def test_command_and_view_as_alice(db: Any, site: dict[str, str], server: str) -> None:
    secret = f"whsec_{uuid.uuid4().hex}"
    out = ok(manage(site, "set_webhook_secret", "acme", stdin=secret + "\n"))
    assert out.strip() == f"acme {SIGNING_SECRET} version 1"
    with db.connect("rita") as conn:  # committed by the command (autocommit), seen from another connection
        assert hush.Secrets(conn, "acme").get(SIGNING_SECRET).value == secret

    body = json.dumps({"type": "invoice.paid"}).encode()
    assert post(f"{server}/webhooks/acme/", body, {"X-Signature": signature(secret, body)}) == \
        (200, {"accepted": "invoice.paid", "secret_version": 1})
    status, answer = post(f"{server}/webhooks/acme/", body, {"X-Signature": signature("guess", body)})
    assert status == 403 and secret not in json.dumps(answer)
    # Row security as alice: globex is not hers (hush.TenantAccessDenied, by the app's middleware).
    assert post(f"{server}/webhooks/globex/", body, {"X-Signature": "sha256=00"}) == \
        (403, {"detail": "Forbidden", "code": "SH020"})

    assert audit(db, SIGNING_SECRET) == [("alice", "create", 1),   # the command
                                         ("rita", "read", 1),      # this test's check
                                         ("alice", "read", 1),     # the accepted event
                                         ("alice", "read", 1)]     # the refused one: read, then compared


def test_save_in_atomic_commits_with_the_row(db: Any, server: str) -> None:
    key = f"sk_live_{uuid.uuid4().hex}"
    assert connect_partner(server, "acme", "stripe", key) == (201, {"partner": "stripe", "key_version": 1})
    with db.connect("rita") as conn:
        saved = hush.Secrets(conn, "acme").get("partners/stripe/api_key")
    assert (saved.value, saved.version, saved.kind) == (key, 1, "api_key")
    assert db.sql("SELECT tenant, partner, key_version FROM partners_partneraccount") == [("acme", "stripe", 1)]
    assert audit(db, "partners/stripe/api_key")[0] == ("alice", "create", 1)


def test_save_in_atomic_rolls_back_when_the_block_raises(db: Any, server: str) -> None:
    first, second = f"sk_live_{uuid.uuid4().hex}", f"sk_live_{uuid.uuid4().hex}"
    assert connect_partner(server, "acme", "stripe", first)[0] == 201
    # The second connect saves version 2, then the unique constraint fails the INSERT:
    # IntegrityError leaves the atomic() block, which rolls back both.
    status, answer = connect_partner(server, "acme", "stripe", second)
    assert status == 409 and answer["detail"] == "stripe is already connected for acme"
    with db.connect("rita") as conn:
        secrets = hush.Secrets(conn, "acme")
        saved = secrets.get("partners/stripe/api_key")
        assert (saved.value, saved.version) == (first, 1)
        assert [v.version for v in secrets.versions("partners/stripe/api_key")] == [1]
    assert audit(db, "partners/stripe/api_key") == [("alice", "create", 1), ("rita", "read", 1)]
    assert db.sql("SELECT count(*) FROM partners_partneraccount") == [(1,)]


def test_no_value_in_server_log(db: Any, cluster: Any, site: dict[str, str], server: str) -> None:
    assert db.sql("SHOW log_statement") == [("all",)]
    secret, key = f"log-canary-{uuid.uuid4()}", f"log-canary-{uuid.uuid4()}"
    ok(manage(site, "set_webhook_secret", "acme", stdin=secret + "\n"))           # autocommit
    assert connect_partner(server, "acme", "stripe", key)[0] == 201                # atomic()
    assert connect_partner(server, "acme", "stripe", key + "-again")[0] == 409     # atomic(), rolled back
    body = b'{"type": "ping"}'
    assert post(f"{server}/webhooks/acme/", body, {"X-Signature": signature(secret, body)})[0] == 200
    with psycopg.connect(cluster.dsn(db.name), autocommit=True) as su:
        su.execute("SELECT pg_catalog.pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    assert "hush.save_secret" in log and "hush.get_secret" in log  # the statements were logged...
    assert "INSERT INTO \"partners_partneraccount\"" in log        # ...Django's own too...
    assert secret not in log and key not in log                    # ...never a value


@pytest.fixture
def client_binding(site: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The site with Django's default database OPTIONS: psycopg's ClientCursor, which
    pastes parameters into the SQL text."""
    (tmp_path / "client_binding.py").write_text(
        "from hushsite.settings import *  # noqa: F403\n"
        "DATABASES = {'default': {**DATABASES['default'], 'OPTIONS': {}}}  # noqa: F405  Django's default\n")
    return {**site, "DJANGO_SETTINGS_MODULE": "client_binding", "PYTHONPATH": str(tmp_path)}


def test_default_backend_fails_the_system_check(client_binding: dict[str, str]) -> None:
    r = manage(client_binding, "check")
    assert r.returncode == 1 and "partners.E001" in r.stderr and "server_side_binding" in r.stderr


def test_default_backend_never_puts_a_value_in_the_log(db: Any, cluster: Any,
                                                       client_binding: dict[str, str]) -> None:
    """Django's default backend gives hush a ClientCursor connection: hush still binds its
    own statements on the server, so the secret is saved and its value is not in the log."""
    canary = f"log-canary-{uuid.uuid4()}"
    r = manage(client_binding, "set_webhook_secret", "acme", "--skip-checks", stdin=canary + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    with db.connect("rita") as conn:
        assert hush.Secrets(conn, "acme").get(SIGNING_SECRET).value == canary
    with psycopg.connect(cluster.dsn(db.name), autocommit=True) as su:
        su.execute("SELECT pg_catalog.pg_sleep(0.2)")  # let the logger flush
    assert canary not in cluster.log.read_text(errors="replace")


def readme_django() -> str:
    return section("Django")


def test_readme_settings_are_the_example_s() -> None:
    block = re.search(r"```python\n(DATABASES = .*?)```", readme_django(), re.S)
    assert block is not None
    documented: dict[str, Any] = {}
    exec(block[1], documented)
    example = runpy.run_path(str(APP / "hushsite" / "settings.py"))
    for key in ("ENGINE", "OPTIONS"):
        assert documented["DATABASES"]["default"][key] == example["DATABASES"]["default"][key]
    assert documented["DATABASES"]["default"]["OPTIONS"] == {"server_side_binding": True}
    assert documented["DATABASES"]["default"]["TEST"] == {"TEMPLATE": "hush_template"}
    assert documented["USE_TZ"] is example["USE_TZ"] is True


@pytest.fixture
def template(db: Any, cluster: Any) -> Iterator[str]:
    """The docs' template, made by its SQL block as written (as a superuser),
    for a role of this test in place of billing_app."""
    [sql] = re.findall(r"```sql\n(.*?)```", readme_django(), re.S)
    name = db.name + "_hush_template"
    sql = sql.replace("billing_app", "django_ci").replace("hush_template", name)
    db.sql("DO $$ BEGIN CREATE ROLE django_ci LOGIN IN ROLE hush_writer; "
           "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    conn = psycopg.connect(cluster.dsn(), autocommit=True)
    try:
        statement = ""
        for line in sql.splitlines():  # as psql reads it: meta-commands by line, SQL up to a semicolon
            line = re.sub(r"\s*--.*", "", line).strip()
            if line.startswith("\\c "):
                conn.close()
                conn = psycopg.connect(cluster.dsn(line.split()[1]), autocommit=True)
            elif line:
                statement += line + "\n"
                if line.endswith(";"):
                    conn.execute(statement)
                    statement = ""
        assert not statement.strip()
    finally:
        conn.close()
    yield name
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        su.execute(f"ALTER DATABASE {name} IS_TEMPLATE false")
        su.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_django_test_runner_clones_the_template(db: Any, cluster: Any, template: str) -> None:
    assert db.sql("SELECT datistemplate FROM pg_database WHERE datname = %s", [template]) == [(True,)]
    assert db.sql("SELECT rolcreatedb, rolsuper FROM pg_roles WHERE rolname = 'django_ci'") == [(True, False)]
    env = django_env(cluster, db.name, "django_ci", DJANGO_DB_TEST_TEMPLATE=template)
    r = manage(env, "test", "partners", "-v", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert f"Creating test database for alias 'default' ('test_{db.name}')" in r.stderr
    assert "Ran 5 tests" in r.stderr and "\nOK" in r.stderr
    # Django dropped its test database; the template holds no secret, only the grant.
    assert db.sql("SELECT count(*) FROM pg_database WHERE datname = %s", [f"test_{db.name}"]) == [(0,)]
    with psycopg.connect(cluster.dsn(template), autocommit=True) as su:
        assert su.execute("SELECT count(*) FROM hush.secrets").fetchone() == (0,)
