"""hush oauth: providers, logins (loopback redirect or device code), tokens,
revocation, connections. A client secret is read like a secret value (file,
stdin or a no-echo prompt), never from argv; tokens are printed only by
`hush oauth token`, to stdout, for a pipe."""
from __future__ import annotations

import http.server
import threading
import webbrowser
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

import click

from .._errors import masked
from .._oauth import AUTH_METHODS as oauth_methods, OAuth, _conninfo_of
from .._oauth_models import TokenSet
from ._common import connect, fails_cleanly, json_option, print_json, print_table, read_value, when
from ._exits import EXIT_ERROR, EXIT_NOT_FOUND, Fail
from ._secrets import from_file

AUTH_METHODS = click.Choice(oauth_methods)


@contextmanager
def tenant_oauth(ctx: click.Context, tenant: str) -> Iterator[OAuth]:
    """The tenant's OAuth over one autocommit connection, which also takes its writes."""
    with connect(ctx) as conn:
        yield OAuth(conn, tenant, writer=conn)


def summary(t: TokenSet) -> dict[str, Any]:
    return {"tenant": t.tenant, "provider": t.provider, "account": t.account, "token_type": t.token_type,
            "expires_at": t.expires_at.isoformat() if t.expires_at else None, "scopes": list(t.scopes),
            "has_refresh_token": t.refresh_token is not None,
            "claims": {k: t.claims[k] for k in ("sub", "email", "name") if k in t.claims} if t.claims else None}


def report(t: TokenSet, as_json: bool) -> None:
    if as_json:
        print_json(summary(t))
    else:
        click.echo(f"connected {t.tenant}/{t.provider} account {t.account!r}, expires {when(t.expires_at)}, "
                   f"scopes {' '.join(t.scopes) or '-'}", err=True)


@click.group("oauth")
def oauth() -> None:
    """OAuth2/OIDC: providers, logins and tokens, stored sealed in hush."""


@oauth.group("provider")
def provider() -> None:
    """Register, list and remove OAuth providers of a tenant."""


@provider.command("add")
@click.argument("tenant")
@click.argument("name")
@click.option("--client-id", required=True)
@click.option("--issuer-url", help="OIDC / RFC 8414 discovery: endpoints come from the issuer's metadata.")
@click.option("--authorization-endpoint")
@click.option("--token-endpoint")
@click.option("--revocation-endpoint")
@click.option("--userinfo-endpoint")
@click.option("--device-authorization-endpoint")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Repeat for several.")
@click.option("--scope", "scopes", multiple=True, help="A default scope (repeat for several).")
@click.option("--grant-type", "grant_types", multiple=True,
              help="A grant hush may use with it (repeat; default authorization_code and refresh_token; any "
                   "other is refused, SH081).")
@click.option("--scope-separator", default=" ", show_default=True,
              help="What joins the scopes sent and splits those granted (Slack: ',').")
@click.option("--auth-method", type=AUTH_METHODS, default="client_secret_basic", show_default=True)
@click.option("--client-secret-from-file", "source", type=from_file, metavar="PATH",
              help="Read the client secret from a file ('-' = stdin); else piped stdin or a prompt. With "
                   "--auth-method private_key_jwt, the private key (PEM, optionally with its certificate, or JWK).")
@click.option("--signing-alg", help="private_key_jwt / client_secret_jwt: the assertion's alg (default RS256 for "
                                    "an RSA key, ES256 for P-256, HS256).")
@click.option("--kid", help="private_key_jwt: the key id the provider knows the public key by.")
@click.option("--no-pkce", is_flag=True, help="Do not send a PKCE challenge (providers that reject one).")
@json_option
@click.pass_context
@fails_cleanly
def provider_add(ctx: click.Context, tenant: str, name: str, client_id: str, issuer_url: str | None,
                 authorization_endpoint: str | None, token_endpoint: str | None, revocation_endpoint: str | None,
                 userinfo_endpoint: str | None, device_authorization_endpoint: str | None,
                 redirect_uris: tuple[str, ...], scopes: tuple[str, ...], grant_types: tuple[str, ...],
                 auth_method: str, source: str | None, signing_alg: str | None, kid: str | None, no_pkce: bool,
                 as_json: bool, scope_separator: str = " ") -> None:
    """Register provider NAME in TENANT (or replace its settings).

    The client secret is never an argument: `ps` and shell history would show
    it. With --auth-method none (a public client) none is read."""
    secret = None if auth_method == "none" else read_value(
        source, False, prompt="Client secret", empty_hint="for a public client, use --auth-method none")
    with tenant_oauth(ctx, tenant) as oa:
        p = oa.register_provider(
            name, client_id=client_id, client_secret=secret, issuer_url=issuer_url,
            authorization_endpoint=authorization_endpoint, token_endpoint=token_endpoint,
            revocation_endpoint=revocation_endpoint, userinfo_endpoint=userinfo_endpoint,
            device_authorization_endpoint=device_authorization_endpoint, redirect_uris=redirect_uris,
            scopes=scopes, grant_types=grant_types or ("authorization_code", "refresh_token"),
            token_endpoint_auth_method=auth_method, use_pkce=not no_pkce,
            token_endpoint_auth_signing_alg=signing_alg, token_endpoint_auth_kid=kid,
            scope_separator=scope_separator)
    if as_json:
        print_json({"name": p.name, "config": p.config, "has_client_secret": p.has_client_secret})
    else:
        click.echo(f"registered {tenant}/{name} (token endpoint {p.config['token_endpoint']})", err=True)


@provider.command("ls")
@click.argument("tenant")
@json_option
@click.pass_context
@fails_cleanly
def provider_ls(ctx: click.Context, tenant: str, as_json: bool) -> None:
    """List the providers of TENANT (never a client secret)."""
    with tenant_oauth(ctx, tenant) as oa:
        found = oa.providers()
    if as_json:
        print_json(found)
        return
    print_table(["NAME", "CLIENT ID", "ISSUER", "TOKEN ENDPOINT", "SECRET", "UPDATED"],
                [[p.name, p.config.get("client_id"), p.config.get("issuer") or "", p.config.get("token_endpoint"),
                  "yes" if p.has_client_secret else "no", when(p.updated_at)] for p in found])


@provider.command("rm")
@click.argument("tenant")
@click.argument("name")
@click.pass_context
@fails_cleanly
def provider_rm(ctx: click.Context, tenant: str, name: str) -> None:
    """Remove provider NAME with its connections (revoke them first: hush oauth revoke)."""
    with tenant_oauth(ctx, tenant) as oa:
        if not oa.remove_provider(name):
            raise Fail(f"no provider {masked(name)} in tenant {tenant}", EXIT_NOT_FOUND)
    click.echo(f"removed {tenant}/{name}", err=True)


class _Callback(http.server.BaseHTTPRequestHandler):
    """Takes the one redirect back from the provider and tells the browser it may close."""

    received: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if urlsplit(self.path).path != self.server.callback_path:  # type: ignore[attr-defined]
            self.send_error(404)
            return
        self.server.received.append(self.path)  # type: ignore[attr-defined]
        self.server.arrived.set()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"hush: authorization received; you may close this window.\n")

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: keep it out of stderr
        pass


@oauth.command("login")
@click.argument("tenant")
@click.argument("provider_name", metavar="PROVIDER")
@click.option("--scope", "scopes", multiple=True, help="Scopes to ask for (default: the provider's).")
@click.option("--account", help="Store the tokens under this account (default: the ID token's sub).")
@click.option("--port", type=int, default=0, show_default=True,
              help="Port of the loopback redirect listener on 127.0.0.1 (0 = any free port).")
@click.option("--path", "callback_path", default="/callback", show_default=True, help="Its path.")
@click.option("--open/--no-open", "open_browser", default=False, help="Open the URL in a browser.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the redirect.")
@json_option
@click.pass_context
@fails_cleanly
def login(ctx: click.Context, tenant: str, provider_name: str, scopes: tuple[str, ...], account: str | None,
          port: int, callback_path: str, open_browser: bool, timeout: float, as_json: bool) -> None:
    """Authorize an account with the authorization code flow (PKCE), for the command line.

    Listens on http://127.0.0.1:PORT/callback for the redirect (RFC 8252: the
    provider must accept this loopback redirect URI; any port, when it
    follows RFC 8252), prints the URL to open, and stores the tokens."""
    server = http.server.HTTPServer(("127.0.0.1", port), _Callback)
    server.received = []  # type: ignore[attr-defined]
    server.arrived = threading.Event()  # type: ignore[attr-defined]
    server.callback_path = callback_path  # type: ignore[attr-defined]
    redirect_uri = f"http://127.0.0.1:{server.server_port}{callback_path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tenant_oauth(ctx, tenant) as oa:
            # This process is the browser's session: the binding stays in its memory, so a
            # redirect carrying another authorization's state (sent to this port by anything
            # on the machine) is refused rather than completed here.
            url, _state, binding = oa.start_authorization(provider_name, scopes=scopes or None,
                                                          redirect_uri=redirect_uri, account=account)
            click.echo(f"Open this URL to authorize (waiting on {redirect_uri}):\n{url}", err=True)
            if open_browser:
                webbrowser.open(url)
            if not server.arrived.wait(timeout):  # type: ignore[attr-defined]
                raise Fail(f"no redirect came back within {timeout:g} s", EXIT_ERROR)
            tokens = oa.complete_authorization(f"http://127.0.0.1:{server.server_port}"
                                               f"{server.received[0]}",  # type: ignore[attr-defined]
                                               binding=binding)
    finally:
        server.shutdown()
    report(tokens, as_json)


@oauth.command("device")
@click.argument("tenant")
@click.argument("provider_name", metavar="PROVIDER")
@click.option("--scope", "scopes", multiple=True, help="Scopes to ask for (default: the provider's).")
@click.option("--account", help="Store the tokens under this account (default: the ID token's sub).")
@json_option
@click.pass_context
@fails_cleanly
def device(ctx: click.Context, tenant: str, provider_name: str, scopes: tuple[str, ...], account: str | None,
           as_json: bool) -> None:
    """Authorize an account with the device flow (RFC 8628): prints a code to enter
    elsewhere, then polls until it is approved, denied or expired."""
    with tenant_oauth(ctx, tenant) as oa:
        d = oa.start_device_authorization(provider_name, scopes or None, account=account)
        where = d.verification_uri_complete or d.verification_uri
        click.echo(f"Go to {d.verification_uri} and enter the code {d.user_code}"
                   + (f"\n(or open {where})" if d.verification_uri_complete else "")
                   + f"\nWaiting up to {d.expires_in} s ...", err=True)
        tokens = oa.wait_for_device_token(provider_name, d)
    report(tokens, as_json)


@oauth.command("token")
@click.argument("tenant")
@click.argument("provider_name", metavar="PROVIDER")
@click.option("--account", help="Which account (needed when there are several).")
@json_option
@click.pass_context
@fails_cleanly
def token(ctx: click.Context, tenant: str, provider_name: str, account: str | None, as_json: bool) -> None:
    """Print a valid access token (refreshed first when it is about to expire), for a pipe:

        curl -H "Authorization: Bearer $(hush oauth token acme github)" ..."""
    with tenant_oauth(ctx, tenant) as oa:
        t = oa.token(provider_name, account)
    if as_json:
        print_json({**summary(t), "access_token": t.access_token})
    else:
        click.echo(t.access_token)


@oauth.command("revoke")
@click.argument("tenant")
@click.argument("provider_name", metavar="PROVIDER")
@click.option("--account", help="Which account (needed when there are several).")
@click.pass_context
@fails_cleanly
def revoke(ctx: click.Context, tenant: str, provider_name: str, account: str | None) -> None:
    """Revoke an account's tokens at the provider (RFC 7009) and erase them here."""
    with tenant_oauth(ctx, tenant) as oa:
        at_provider = oa.revoke(provider_name, account)
    click.echo(f"revoked {tenant}/{provider_name}" + ("" if at_provider else
               " (erased here; the provider has no revocation endpoint)"), err=True)


@oauth.command("connections")
@click.argument("tenant")
@click.option("--provider", "provider_name", help="Only this provider's.")
@json_option
@click.pass_context
@fails_cleanly
def connections(ctx: click.Context, tenant: str, provider_name: str | None, as_json: bool) -> None:
    """List TENANT's connected accounts: status, expiry, scopes, last error; never a token."""
    with tenant_oauth(ctx, tenant) as oa:
        found = oa.connections(provider_name)
    if as_json:
        print_json(found)
        return
    print_table(["PROVIDER", "ACCOUNT", "STATUS", "EXPIRES", "SCOPES", "LAST ERROR"],
                [[c.provider, c.account, c.status, when(c.expires_at), " ".join(c.scopes), c.last_error or ""]
                 for c in found])



@click.command("oauth-worker")
@click.option("--window", type=click.IntRange(1), default=900, show_default=True,
              help="Refresh tokens that expire within this many seconds.")
@click.option("--keepalive", type=click.IntRange(1), default=None,
              help="Also refresh connections idle this many seconds (e.g. 86400), so providers that revoke "
                   "unused refresh tokens do not. Default: off.")
@click.option("--batch", "batch_size", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="Connections leased per round trip.")
@click.option("--interval", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds between rounds (a NOTIFY from a new connection wakes it sooner).")
@click.option("--lease", "lease_seconds", type=click.IntRange(5, 3600), default=60, show_default=True,
              help="How long a claimed connection stays leased (longer than a refresh takes).")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
              help="Read timeout of a request to a provider: how long it may go without a byte of the answer.")
@click.option("--connect-timeout", type=click.FloatRange(0.1, 600), default=5.0, show_default=True,
              help="How long connecting to a provider may take.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=16, show_default=True,
              help="Refreshes in flight at once (threads).")
@click.option("--per-host", type=click.IntRange(1, 1000), default=4, show_default=True,
              help="Refreshes in flight at once to one origin (a tenant's token endpoint: scheme, host, port).")
@click.option("--per-tenant", type=click.IntRange(1, 1000), default=None,
              help="Refreshes in flight at once for one tenant. Default: --per-host, at most a quarter of "
                   "--concurrency.")
@click.option("--db-connections", type=click.IntRange(1, 1000), default=4, show_default=True,
              help="Database connections in the worker's pool (one more LISTENs for wake-ups).")
@click.option("--db-lock-timeout", type=click.FloatRange(0.001, 600), default=0.5, show_default=True,
              help="Seconds a statement of the worker waits for a lock (it waits for no connection row's).")
@click.option("--db-statement-timeout", type=click.FloatRange(0.001, 600), default=30.0, show_default=True,
              help="Seconds a statement of the worker may run.")
@click.option("--once", is_flag=True, help="One round until nothing is due, then exit (for cron).")
@click.option("--listen-dsn", metavar="DSN", envvar="HUSH_LISTEN_DSN",
              help="A direct DSN (not through pgbouncer) on which to LISTEN for new connections, when --dsn "
                   "goes through a transaction pooler [env: HUSH_LISTEN_DSN].")
@click.pass_context
@fails_cleanly
def oauth_worker(ctx: click.Context, window: int, keepalive: int | None, batch_size: int, interval: float,
                 lease_seconds: int, timeout: float, connect_timeout: float, concurrency: int, per_host: int,
                 per_tenant: int | None, db_connections: int, db_lock_timeout: float, db_statement_timeout: float,
                 once: bool, listen_dsn: str | None) -> None:
    """Keep OAuth tokens fresh ahead of expiry, for every tenant this role is granted.

    Run it as a login role that is a member of hush_oauth_worker and granted the
    tenants it serves ('*' for all). Several may run side by side. Refreshes run
    concurrently, fair across tenants and hosts: a provider that never answers
    holds --per-host of them for one timeout, and nobody else waits; nor does
    the worker wait on a row another transaction holds locked. One log
    line per action on stderr, never a token. SIGTERM or SIGINT: nothing more
    starts, the leases whose request was not sent are given back at once, the
    requests in flight finish (up to their timeouts) and are stored, exit 0."""
    import logging
    import signal

    from .._oauth_worker import OAuthWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s hush-oauth-worker %(levelname)s %(message)s")
    with connect(ctx) as conn:  # fail fast (exit 9) when the database is unreachable
        conninfo = _conninfo_of(conn)
    worker = OAuthWorker(conninfo, window=window, batch_size=batch_size, interval=interval, lease_seconds=lease_seconds,
                         keepalive=keepalive, timeout=timeout, connect_timeout=connect_timeout,
                         concurrency=concurrency, per_host=per_host, per_tenant=per_tenant,
                         db_connections=db_connections, listen_conninfo=listen_dsn, db_lock_timeout=db_lock_timeout,
                         db_statement_timeout=db_statement_timeout)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    if once:
        try:
            worker.run_once()
        finally:
            worker.close()
    else:
        worker.run()
