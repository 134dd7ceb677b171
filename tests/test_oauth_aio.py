"""hush.aio.OAuth against the loopback authorization server: an asyncio app registers a
provider, completes an authorization code flow (the test plays the browser), asks for a
token from many tasks at once (one refresh reaches the provider), revokes; the event loop
keeps running while the provider holds a request; a cancelled await leaves no lease
behind; the facade works over an AsyncConnection and an AsyncConnectionPool too."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import hush
import hush.aio
from oauth_helpers import GRANTS, REDIRECT, SCOPES, browser, fresh_server


async def _register(oa: hush.aio.OAuth, srv: Any) -> None:
    await oa.register_provider("idp", issuer_url=srv.issuer, client_id="app", client_secret="app-secret",
                               redirect_uris=[REDIRECT], scopes=SCOPES, grant_types=GRANTS)


Body = Callable[[hush.aio.AsyncClient, hush.aio.OAuth, Any, hush.TokenSet], Awaitable[None]]


def logged_in(db: Any, oauth_server: Any, body: Body, **connect: Any) -> None:
    """Run `body` in an asyncio app (the pooled client, the tenant's OAuth) that registered the
    provider and logged in through the client's callback handler, with a 30-second token
    (inside the 60-second skew: the next access_token refreshes); later tokens live an hour."""
    srv = fresh_server(oauth_server)

    async def main() -> None:
        async with await hush.aio.connect(db.dsn("alice"), **connect) as client:
            oa = client.tenant("acme").oauth
            srv.control.token_lifetime = 30
            await _register(oa, srv)
            url, state, binding = await oa.start_authorization("idp")
            callback = await asyncio.to_thread(browser, url)  # the user's browser, off the loop
            tokens = await client.complete_authorization(callback, binding=binding)  # the state names the tenant
            srv.control.token_lifetime = 3600
            await body(client, oa, srv, tokens)
        assert client.pool.closed
    asyncio.run(main())


def test_code_flow_then_one_refresh_for_many_tasks_then_revoke(db: Any, oauth_server: Any) -> None:
    async def body(client: hush.aio.AsyncClient, oa: hush.aio.OAuth, srv: Any, tokens: hush.TokenSet) -> None:
        assert isinstance(oa, hush.aio.OAuth) and repr(oa) == "hush.aio.OAuth(tenant='acme')"
        assert tokens.account == "sub-alice" and tokens.tenant == "acme"
        assert [p.name for p in await oa.providers()] == ["idp"]
        # A facade per Secrets; the client's threads and connections are shared.
        got = await asyncio.gather(*(client.tenant("acme").oauth.access_token("idp") for _ in range(24)))
        assert len(set(got)) == 1 and got[0] != tokens.access_token
        assert srv.token_count("refresh_token") == 1  # 24 tasks, 8 threads, one request
        [conn] = await oa.connections()
        assert conn.status == "active" and conn.lease_until is None
        assert await oa.revoke("idp")
        assert srv.tokens[got[0]].revoked and await oa.connections() == []
        with pytest.raises(hush.OAuthConnectionNotFound):
            await oa.access_token("idp")
    logged_in(db, oauth_server, body, max_size=2)


def test_the_loop_runs_while_the_provider_holds_a_request(db: Any, oauth_server: Any) -> None:
    async def body(client: hush.aio.AsyncClient, oa: hush.aio.OAuth, srv: Any, tokens: hush.TokenSet) -> None:
        before = srv.token_count("refresh_token")
        srv.control.token_delay = 0.5
        seen: list[int] = []  # what the server had counted, at each tick of another task
        done = False

        async def ticker() -> None:
            while not done:
                seen.append(srv.token_count("refresh_token"))
                await asyncio.sleep(0.005)
        ticking = asyncio.create_task(ticker())
        await oa.refresh("idp")
        done = True  # set before the ticker can run again: a tick below saw the request in flight
        await ticking
        assert before in seen  # ticks before the request...
        assert before + 1 in seen  # ...and while the provider held it: the loop was not waiting on it
    logged_in(db, oauth_server, body)


def test_a_cancelled_await_leaves_no_lease_behind(db: Any, oauth_server: Any) -> None:
    async def body(client: hush.aio.AsyncClient, oa: hush.aio.OAuth, srv: Any, tokens: hush.TokenSet) -> None:
        srv.control.token_delay = 0.5
        refreshing = asyncio.create_task(oa.access_token("idp"))
        while srv.token_count("refresh_token") == 0:  # the request reached the provider
            await asyncio.sleep(0.005)
        refreshing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await refreshing
        # The refresh went on in its thread: this call waits for its lease, then reads its tokens.
        token = await oa.access_token("idp")
        assert token != tokens.access_token and srv.tokens[token].user == "alice"
        assert srv.token_count("refresh_token") == 1
        [conn] = await oa.connections()
        assert conn.lease_until is None and conn.status == "active"
    logged_in(db, oauth_server, body)


def test_over_an_async_connection_and_a_pool_of_yours(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    slept: list[float] = []

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(db.dsn("alice"), autocommit=True) as conn:
            oa = hush.aio.OAuth(conn, "acme", threads=2, sleep=slept.append)  # hush.OAuth's arguments pass through
            await _register(oa, srv)
            device = await oa.start_device_authorization("idp", ["api:read"], account="tv")
            srv.approve_device(device.user_code)
            tokens = await oa.wait_for_device_token("idp", device)
            assert tokens.account == "tv" and slept == [device.interval]
            await oa.close()
            with pytest.raises(RuntimeError, match="closed"):
                await oa.providers()
            over_secrets = hush.aio.AsyncSecrets(conn, "acme").oauth  # a connection of its own, the same DSN
            assert [p.name for p in await over_secrets.providers()] == ["idp"]
            await over_secrets.close()
        async with AsyncConnectionPool(db.dsn("alice"), min_size=1, open=False) as pool:
            oa = hush.aio.OAuth(pool, "acme")
            service = await oa.client_credentials("idp", ["api:read"])
            assert (await oa.client_credentials("idp", ["api:read"])).access_token == service.access_token  # reused
            await oa.close()
        with pytest.raises(TypeError, match="writer"):
            hush.aio.OAuth(object(), "acme")
        oa = hush.aio.OAuth(object(), "acme", writer=db.dsn("alice"))  # e.g. beside a SQLAlchemy AsyncSession
        assert [p.name for p in await oa.providers()] == ["idp"]
        await oa.close()
        with pytest.raises(TypeError):
            hush.aio.OAuth(db.dsn("alice"), "acme", skw=1.0)  # not an argument of hush.OAuth
    asyncio.run(main())


def test_hush_aio_loads_the_oauth_stack_only_when_used() -> None:
    from test_cli_startup import BLOCK_OAUTH, OAUTH_STACK, python
    r = python(f"import sys, hush.aio; print(sorted(m for m in {OAUTH_STACK!r} if m in sys.modules))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    r = python(BLOCK_OAUTH + "import hush.aio\ntry:\n    hush.aio.OAuth\nexcept ImportError as e:\n    print(e)\n")
    assert "pip install 'hush-client[oauth]'" in r.stdout, r.stdout + r.stderr
