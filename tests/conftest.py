"""Fixtures: one real PostgreSQL 15 cluster per test session (run as the
`postgres` OS user when we are root), a template database with hush
installed, and a fresh database per test cloned from it.

Login roles, all non-superusers (superusers bypass row-level security):
  alice   hush_writer, granted tenant acme
  bob     hush_writer, granted tenant globex
  rita    hush_reader, granted tenant acme
  adam    hush_admin
  audrey  hush_auditor
  otto    no hush role at all
  gateway login role with no grant of its own that SET ROLEs to acme_app
          (PostgREST style); acme_app is NOLOGIN hush_writer granted acme
  wendy   hush_oauth_worker, granted tenant acme (an OAuth refresh worker)
  mallory hush_writer, granted tenant evil: the hostile role of test_authority.py

With HUSH_FAIL_ON_SKIP=1 (set by .ci/run) a skipped test counts as a failure
and a run in which no test passed fails, so CI cannot go green by skipping
what a missing package would make it skip.
"""
from __future__ import annotations

import itertools
import os
import shutil
from typing import Collection, Iterator

import psycopg
import pytest

from hush import devcluster as pgcluster  # noqa: E402

# The throwaway clusters (this session's, the tests' own, the demo's) live in RAM
# where there is a roomy tmpfs: CREATE DATABASE, which every test runs, takes
# ~20 ms there and ~500 ms on this machine's ext4 /tmp. Durability against a
# killed process, all the crash tests ask for, is the same.
if (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK)
        and shutil.disk_usage("/dev/shm").free > 4 << 30):
    os.environ.setdefault("HUSH_CLUSTER_DIR", "/dev/shm")

TEMPLATE = "hush_template"
ROLES = {
    "alice": "LOGIN IN ROLE hush_writer",
    "bob": "LOGIN IN ROLE hush_writer",
    "rita": "LOGIN IN ROLE hush_reader",
    "adam": "LOGIN IN ROLE hush_admin",
    "audrey": "LOGIN IN ROLE hush_auditor",
    "otto": "LOGIN",
    "acme_app": "NOLOGIN IN ROLE hush_writer",
    "gateway": "LOGIN NOINHERIT IN ROLE acme_app",
    "wendy": "LOGIN IN ROLE hush_oauth_worker",
    "mallory": "LOGIN IN ROLE hush_writer",
}
GRANTS = [("alice", "acme"), ("bob", "globex"), ("rita", "acme"), ("acme_app", "acme"), ("wendy", "acme"),
          ("mallory", "evil")]
# Hosts every test database lets OAuth requests reach over plain http and at loopback
# addresses (hush.oauth_allow_egress): the loopback OAuth server's.
LOOPBACK_EGRESS = ("127.0.0.1", "localhost")
PASSED = pytest.StashKey[int]()


def _fail_on_skip() -> bool:
    return os.environ.get("HUSH_FAIL_ON_SKIP") == "1"


def _skip_fails(report: pytest.TestReport | pytest.CollectReport) -> None:
    if _fail_on_skip() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which HUSH_FAIL_ON_SKIP=1 counts as a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    _skip_fails(report)
    if report.when == "call" and report.passed:
        item.config.stash[PASSED] = item.config.stash.get(PASSED, 0) + 1


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _skip_fails(outcome.get_result())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _fail_on_skip() and exitstatus == pytest.ExitCode.OK and not session.config.stash.get(PASSED, 0):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def hush_database(c: pgcluster.Cluster, name: str, roles: Collection[str]) -> None:
    """Database `name` in cluster c, with hush installed, the login roles named (made as
    ROLES says) and their tenant grants (GRANTS). The session's template has every role;
    tests/replica_helpers.py's primaries a few."""
    with psycopg.connect(c.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(c.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION hush CASCADE")
        for role in roles:
            conn.execute(f"CREATE ROLE {role} {ROLES[role]}")
        for role, tenant in GRANTS:
            if role in roles:
                conn.execute("SELECT hush.grant_tenant(%s, %s)", [role, tenant])


@pytest.fixture(scope="session")
def cluster() -> Iterator[pgcluster.Cluster]:
    if not pgcluster.extension_installed():
        pytest.fail("the hush extension is not installed: run `make test` (it builds and installs it)")
    # log_statement = 'all' for the whole session: tests/test_logging.py checks
    # that no secret value reaches the server log even so.
    c = pgcluster.Cluster(settings={"log_statement": "'all'"}, keys=2).start()
    try:
        hush_database(c, TEMPLATE, ROLES)
        # The OAuth tests' provider is the loopback server, over plain http, which hush refuses
        # unless an admin allows it: allowed once, in the template every test database copies.
        with psycopg.connect(c.dsn(TEMPLATE, user="adam"), autocommit=True) as conn:
            for host in LOOPBACK_EGRESS:
                conn.execute("SELECT hush.oauth_allow_egress(%s, allow_http => true, allow_private => true)", [host])
        yield c
    finally:
        c.stop()


class Db:
    """A database cloned from the template; connect as any test role."""

    def __init__(self, cluster: pgcluster.Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name

    def dsn(self, user: str = "postgres") -> str:
        return self.cluster.dsn(self.name, user=user)

    def connect(self, user: str = "postgres", autocommit: bool = True, **kw: object) -> psycopg.Connection:
        return psycopg.connect(self.dsn(user), autocommit=autocommit, **kw)  # type: ignore[arg-type]

    def sql(self, query: str, params: object = None, user: str = "postgres") -> list[tuple]:
        """Run one statement in its own connection and return its rows (if any)."""
        with self.connect(user) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


_counter = itertools.count()


@pytest.fixture
def db(cluster: pgcluster.Cluster) -> Iterator[Db]:
    name = f"t{next(_counter)}"
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        # FILE_COPY: a copy of the template's files and a checkpoint (cheap with fsync off), where
        # PostgreSQL 15's default WAL_LOG writes the whole template through the WAL: about half
        # the time, and so is the DROP below.
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
    yield Db(cluster, name)
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def extension_dir() -> str:
    """The server's extension directory, where its extensions' scripts are."""
    import subprocess
    share = subprocess.run([str(pgcluster.PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True,
                           check=True).stdout.strip()
    return os.path.join(share, "extension")


@pytest.fixture(scope="session")
def released_versions() -> Iterator[list[str]]:
    """The install scripts of released versions (releases/hush--X.sql), in the server's
    extension directory while the session lasts, for tests that install an old version
    (CREATE EXTENSION hush VERSION 'X'); `make install` installs only their update scripts.
    Yields the versions; removes after the session what it put there."""
    import re
    ext = extension_dir()
    releases = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "releases")
    scripts = sorted(f for f in os.listdir(releases) if re.fullmatch(r"hush--[0-9.]+\.sql", f))
    copied = [f for f in scripts if not os.path.exists(os.path.join(ext, f))]
    for f in copied:
        shutil.copyfile(os.path.join(releases, f), os.path.join(ext, f))
    try:
        yield [f[len("hush--"):-len(".sql")] for f in scripts]
    finally:
        for f in copied:
            os.remove(os.path.join(ext, f))


@pytest.fixture
def standby(cluster: pgcluster.Cluster) -> Iterator[pgcluster.Cluster]:
    """A streaming standby of the session's cluster (pg_basebackup -R), removed afterwards."""
    sb = cluster.start_standby()
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def pgbouncer(cluster: pgcluster.Cluster) -> Iterator[object]:
    """pgbouncer in transaction mode in front of the session's cluster (hush.devpooler)."""
    from hush.devpooler import PgBouncer
    bouncer = PgBouncer(cluster, ["postgres", *ROLES]).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[object]:
    """The loopback OAuth 2.0 / OIDC server (tests/oauth_server.py), one per session."""
    import logging

    from oauth_server import OAuthServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines in the test output
    srv = OAuthServer().start()
    yield srv
    srv.stop()
