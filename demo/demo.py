"""hush in five minutes, on a throwaway PostgreSQL cluster.

`make demo` runs this after installing the extension. It starts a private
cluster (as the postgres OS user when run as root), writes a root keyring
outside the data directory, creates the extension, and walks through the main
job as two application roles. Values always travel as bind parameters.
Pass --keep to leave the cluster running and print how to connect and stop it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import hush
import psycopg
from hush import devcluster as pgcluster


def step(title: str) -> None:
    print(f"\n== {title}")


def show(cur: psycopg.Cursor, cols: list[str] | None = None) -> None:
    names = [c.name for c in cur.description]
    data = cur.fetchall()
    idx = [names.index(c) for c in cols] if cols else list(range(len(names)))
    table = [[names[i] for i in idx]] + [["" if r[i] is None else str(r[i]) for i in idx] for r in data]
    widths = [max(len(row[j]) for row in table) for j in range(len(idx))]
    for n, row in enumerate(table):
        print("   " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))
        if n == 0:
            print("   " + "  ".join("-" * w for w in widths))


def run(c: pgcluster.Cluster) -> None:
    print(f"cluster: {c.data} (port {c.port}), root keyring: {c.keyfile}")
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        step("CREATE EXTENSION hush CASCADE, two application roles, one auditor")
        su.execute("CREATE EXTENSION hush CASCADE")
        su.execute("CREATE ROLE acme_app LOGIN IN ROLE hush_writer")
        su.execute("CREATE ROLE globex_app LOGIN IN ROLE hush_writer")
        su.execute("CREATE ROLE auditor LOGIN IN ROLE hush_auditor")
        su.execute("SELECT hush.grant_tenant('acme_app', 'acme')")
        su.execute("SELECT hush.grant_tenant('globex_app', 'globex')")
        print("   acme_app may act on tenant acme, globex_app on tenant globex")

    acme = psycopg.connect(c.dsn(user="acme_app", application_name="demo"), autocommit=True)
    globex = psycopg.connect(c.dsn(user="globex_app", application_name="demo"), autocommit=True)
    with acme, globex:
        step("save secrets for two tenants (values as bind parameters)")
        for name, value, tags in [("stripe_api_key", "sk_test_acme_1", ["payments", "prod"]),
                                  ("database_url", "postgresql://acme:pw@db/acme", ["infra", "prod"]),
                                  ("slack_webhook", "https://hooks.example/acme", ["chat"])]:
            acme.execute("SELECT hush.save_secret(%s, %s, %s, tags => %s, kind => 'api_key')",
                         ["acme", name, value, tags])
        globex.execute("SELECT hush.save_secret(%s, %s, %s, description => %s)",
                       ["globex", "stripe_api_key", "sk_test_globex_1", "Globex's own Stripe key"])
        print("   acme: stripe_api_key, database_url, slack_webhook; globex: stripe_api_key")

        step("read them back: same name, different tenants, different values")
        show(acme.execute("SELECT * FROM hush.get_secret(%s, %s)", ["acme", "stripe_api_key"]),
             ["tenant_id", "name", "value", "version", "tags"])
        show(globex.execute("SELECT * FROM hush.get_secret(%s, %s)", ["globex", "stripe_api_key"]),
             ["tenant_id", "name", "value", "version", "description"])

        step("update: a new value makes version 2; version 1 stays readable")
        show(acme.execute("SELECT * FROM hush.update_secret(%s, %s, %s)", ["acme", "stripe_api_key", "sk_test_acme_2"]),
             ["name", "version"])
        show(acme.execute("SELECT name, value, version FROM hush.get_secret(%s, %s)", ["acme", "stripe_api_key"]))
        show(acme.execute("SELECT name, value, version FROM hush.get_secret(%s, %s, 1)", ["acme", "stripe_api_key"]))
        show(acme.execute("SELECT version, created_by, is_current FROM hush.secret_versions(%s, %s)",
                          ["acme", "stripe_api_key"]))

        step("a reader rolls back with the value in hand: the record of its read stays (committed apart)")
        acme.execute("BEGIN")
        acme.execute("SELECT value FROM hush.get_secret(%s, %s)", ["acme", "database_url"])
        acme.execute("ROLLBACK")
        show(acme.execute("SELECT action, secret_name, db_role, caller_xact FROM hush.audit_log(%s, action => 'read',"
                          " secret_name => 'database_url')", ["acme"]))

        step("check-and-set: a writer holding a stale version is refused")
        try:
            acme.execute("SELECT hush.save_secret(%s, %s, %s, expected_version => 1)",
                         ["acme", "stripe_api_key", "sk_stale"])
        except psycopg.Error as e:
            print(f"   refused, SQLSTATE {e.sqlstate}: {e.diag.message_primary}")

        step("a staged rotation: the new value waits as 'pending' while readers keep the current one")
        acme.execute("SELECT hush.save_secret(%s, %s, %s, rotate_every => '30 days', max_versions => 5)",
                     ["acme", "database_url", "postgresql://acme:pw@db/acme"])
        show(acme.execute("SELECT * FROM hush.save_secret(%s, %s, %s, stage => 'pending')",
                          ["acme", "database_url", "postgresql://acme:pw2@db/acme"]), ["name", "version"])
        show(acme.execute("SELECT value, version, stage FROM hush.get_secret(%s, %s)", ["acme", "database_url"]))
        show(acme.execute("SELECT value, version, stage FROM hush.get_secret(%s, %s, stage => 'pending')",
                          ["acme", "database_url"]))
        print("   (the rotation job sets the new password in the database, then promotes; had it failed, "
              "nothing would have changed for readers)")
        show(acme.execute("SELECT name, version FROM hush.promote_secret(%s, %s, expected_version => 3)",
                          ["acme", "database_url"]))
        show(acme.execute("SELECT version, is_current, stage FROM hush.secret_versions(%s, %s)",
                          ["acme", "database_url"]))
        show(acme.execute("SELECT name, reason, due_at::date FROM hush.due_for_rotation(%s, at => now() + "
                          "interval '29 days')", ["acme"]))
        show(acme.execute("SELECT name, version, change FROM hush.changes(%s) WHERE name = 'database_url'",
                          ["acme"]))

        step("soft delete, then restore")
        acme.execute("SELECT hush.delete_secret(%s, %s)", ["acme", "slack_webhook"])
        try:
            acme.execute("SELECT * FROM hush.get_secret(%s, %s)", ["acme", "slack_webhook"])
        except psycopg.Error as e:
            print(f"   after delete, get fails: SQLSTATE {e.sqlstate}: {e.diag.message_primary}")
        show(acme.execute("SELECT name, version, deleted_at FROM hush.restore_secret(%s, %s)", ["acme", "slack_webhook"]))
        show(acme.execute("SELECT name, value FROM hush.get_secret(%s, %s)", ["acme", "slack_webhook"]))

        step("list with pagination (2 per page; every row carries the total) and search")
        for page in (1, 2):
            print(f"   page {page}:")
            show(acme.execute("SELECT name, version, tags, total FROM hush.list_secrets(%s, page => %s, per_page => 2)",
                              ["acme", page]))
        print("   tagged prod:")
        show(acme.execute("SELECT name, tags FROM hush.list_secrets(%s, tags => %s)", ["acme", ["prod"]]))
        print("   search 'STRIPE':")
        show(acme.execute("SELECT name, total FROM hush.search_secrets(%s, %s)", ["acme", "STRIPE"]))

        step("isolation: acme_app asks for globex's secret")
        for q in ("SELECT * FROM hush.get_secret('globex', 'stripe_api_key')",
                  "SELECT * FROM hush.get_secret('globex', 'no_such_secret')",
                  "SELECT * FROM hush.secrets"):
            try:
                acme.execute(q)
            except psycopg.Error as e:
                print(f"   {q}\n     -> SQLSTATE {e.sqlstate}: {e.diag.message_primary}")

    step("the Python client: one import, the same calls")
    print('   client = hush.connect(dsn); acme = client.tenant("acme")')
    with hush.connect(c.dsn(user="acme_app", application_name="demo"), max_size=1) as client:
        key = client.tenant("acme").get("stripe_api_key")
        print(f"   acme.get('stripe_api_key') -> {key!r}   (repr masks it; key.value has it)")
        try:
            client.tenant("globex").get("stripe_api_key")
        except hush.TenantAccessDenied as e:
            print(f"   client.tenant('globex').get(...) -> hush.TenantAccessDenied [{e.code}]")

    step("the hush command line: import a .env from stdin, list it, run a command with it")
    cli = [str(Path(sys.executable).parent / "hush"), "--dsn", c.dsn(user="acme_app", application_name="demo")]
    for args, stdin in ((["import", "acme", "-", "--prefix", "env/"], "API_TOKEN=tok_123\nREGION=eu-west-1\n"),
                        (["ls", "acme", "--prefix", "env/"], None),
                        (["run", "acme", "--prefix", "env/", "--", "sh", "-c",
                          'echo "REGION=$REGION; API_TOKEN is ${#API_TOKEN} characters long"'], None)):
        print("   $ hush " + " ".join(args) + (" < .env" if stdin else ""))
        out = subprocess.run(cli + args, input=stdin or "", capture_output=True, text=True, check=True)
        for line in (out.stdout + (out.stderr if stdin else "")).splitlines():
            print("     " + line)

    oauth_demo(c)

    step("the audit trail (as the auditor role): who did what, never a value")
    with psycopg.connect(c.dsn(user="auditor"), autocommit=True) as aud:
        show(aud.execute("SELECT id, tenant_id, action, secret_name, version, db_role, application_name"
                         " FROM hush.audit_log ORDER BY id"))
        step("the trail sealed (SHA-256, chained) and verified; the head hash is worth keeping elsewhere")
        show(aud.execute("SELECT seals_created, rows_sealed, unsealed_rows, left(head_hash, 16) || '...' AS head"
                         " FROM hush.seal_audit()"))
        show(aud.execute("SELECT ok, seals_checked, rows_checked, problem FROM hush.verify_audit()"))
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        step("what is stored: ciphertext and a wrapped data key per version, sealed under root key")
        show(su.execute("SELECT s.tenant_id, s.name, v.version, v.key_id, length(v.ciphertext) AS ct_bytes,"
                        " encode(substr(v.ciphertext, 25, 12), 'hex') || '...' AS ciphertext"
                        " FROM hush.secrets s JOIN hush.secret_versions v ON v.tenant_id = s.tenant_id"
                        " AND v.secret_id = s.id ORDER BY 1, 2, 3"))


def oauth_demo(c: pgcluster.Cluster) -> None:
    """OAuth against the loopback OIDC server the tests use (tests/oauth_server.py), standing in for Google."""
    import logging
    import threading

    import httpx2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from oauth_server import OAuthServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    step("OAuth: register a provider (OIDC discovery), log a user in (PKCE), tokens sealed in hush")
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        # This provider answers over plain http on loopback, which hush refuses unless an admin
        # allows it (a real one is https at a public address, which needs no entry).
        su.execute("SELECT hush.oauth_allow_egress('127.0.0.1', allow_http => true, allow_private => true)")
    print("   hush.oauth_allow_egress('127.0.0.1', allow_http => true, allow_private => true): "
          "the admin lets hush reach this loopback stand-in")
    srv = OAuthServer().start()
    srv.add_client("demo-app", "demo-client-secret", redirect_uris=["https://app.example/oauth/callback"])
    srv.control.token_lifetime = 30  # short-lived tokens, so the refresh below is needed at once
    try:
        with hush.connect(c.dsn(user="acme_app", application_name="demo"), max_size=10) as client:
            oauth = client.tenant("acme").oauth
            oauth.register_provider("idp", issuer_url=srv.issuer, client_id="demo-app",
                                    client_secret="demo-client-secret", scopes=["openid", "email"],
                                    redirect_uris=["https://app.example/oauth/callback"])
            request = oauth.start_authorization("idp")  # request.binding goes in the user's session cookie
            print(f"   start_authorization -> {request.url[:90]}...")
            callback = httpx2.get(request.url).headers["location"]  # the user's browser, sent back to the app
            tokens = client.complete_authorization(callback, binding=request.binding)
            print(f"   complete_authorization -> {tokens!r}")
            print(f"   ID token verified: sub={tokens.claims['sub'] if tokens.claims else None}, "
                  f"email={tokens.claims['email'] if tokens.claims else None}")
            srv.control.token_lifetime = 600  # what the refresh below hands out: inside the worker's window
            got: list[str] = []
            callers = [threading.Thread(target=lambda: got.append(oauth.access_token("idp"))) for _ in range(10)]
            for t in callers:
                t.start()
            for t in callers:
                t.join()
            print(f"   10 threads call access_token() on a token about to expire: {len(set(got))} distinct "
                  f"token, {srv.token_count('refresh_token')} refresh request at the server")
            for conn in oauth.connections():
                print(f"   connection {conn.provider}/{conn.account}: {conn.status}, scopes {' '.join(conn.scopes)}, "
                      f"refresh token held: {conn.has_refresh_token}")
        step("the OAuth worker (its own role, no access to secret values) refreshes what expires within 15 minutes")
        with psycopg.connect(c.dsn(), autocommit=True) as su:
            su.execute("CREATE ROLE token_refresher LOGIN IN ROLE hush_oauth_worker")
            su.execute("SELECT hush.grant_tenant('token_refresher', 'acme')")
            # As if the token were an hour-long one with ten minutes left.
            su.execute("UPDATE hush.oauth_connections SET refreshed_at = now() - interval '50 minutes', "
                       "expires_at = now() + interval '10 minutes'")
        worker = hush.OAuthWorker(c.dsn(user="token_refresher"))
        print(f"   hush oauth-worker --once -> {dict(worker.run_once())}; "
              f"refresh requests at the server so far: {srv.token_count('refresh_token')}")
        worker.close()
    finally:
        srv.stop()
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        show(su.execute("SELECT provider, account, generation, length(ciphertext) AS sealed_tokens_bytes, "
                        "encode(substr(ciphertext, 25, 12), 'hex') || '...' AS ciphertext "
                        "FROM hush.oauth_connections"))


def main() -> None:
    ap = argparse.ArgumentParser(description="hush demo on a throwaway PostgreSQL cluster")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running at the end")
    args = ap.parse_args()
    c = pgcluster.Cluster().start()
    try:
        run(c)
    finally:
        if args.keep:
            print(f"\ncluster left running. Connect: psql \"{c.dsn()}\"")
            print(f"Stop it: {'runuser -u postgres -- ' if pgcluster.os.geteuid() == 0 else ''}"
                  f"{pgcluster.PG_BIN}/pg_ctl -D {c.data} stop && rm -rf {c.base}")
        else:
            c.stop()
            print("\ncluster stopped and removed. Done.")


if __name__ == "__main__":
    main()
