"""hush.OAuthWorker's work on one leased connection (_oauth_worker.py): open its lease,
send its refresh request, hand the answer to the store queue, count and log how it
ended; or give the lease back unsent."""
from __future__ import annotations

import threading
from typing import Any, Callable
from urllib.parse import urlsplit

import psycopg

from . import _oauth_calls as q
from ._errors import HushError, OAuthError, OAuthLeaseLost, ProviderUnavailable, ReauthorizationRequired
from ._oauth_batch import RETRY_SECONDS, NotStored
from ._oauth_dispatch import Job
from ._oauth_worker_base import STORE_SECONDS, WorkerBase, log


def _origin(tenant: str, config: dict[str, Any]) -> str:
    """What per-host slots and stalls count by: the tenant and its provider's token endpoint's
    origin (scheme, host, port). By the host name alone, a tenant that named another's
    provider host with a port of its own (a tarpit) shared that host's slots, and stalled them."""
    u = urlsplit(str(config.get("token_endpoint") or ""))
    scheme = u.scheme.lower()
    try:
        port = u.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:  # not a port: the request fails on its own
        port = None
    return f"{tenant} {scheme}://{(u.hostname or '').lower()}:{port}"


class Jobs(WorkerBase):
    """One connection at a time, as the dispatcher (_oauth_dispatch.py) hands them out."""

    @staticmethod
    def _where(job: Job) -> str:
        return f"tenant={job.row['tenant_id']} provider={job.row['provider']} account={job.row['account']}"

    @staticmethod
    def _opened(job: Job) -> str | None:
        """For a lease opened with its claim (lease()): its origin, the lease taken up."""
        lease = job.row.get("lease")
        if lease is None:
            return None
        job.lease = lease
        return _origin(job.tenant, lease["config"] or {})

    def _open(self, job: Job) -> str | None:
        """Take up the claimed lease (the refresh token, the provider's settings); its origin
        (_origin), or None when there is nothing to send (outcome counted)."""
        row = job.row
        if "lease" in row:  # opened with its claim (lease())
            if row["lease"] is None:
                log.warning("skipped %s: %s [%s]", self._where(job), row["message"], row["sqlstate"])
                self._count("skipped")
                return None
            job.lease = row["lease"]
            return _origin(job.tenant, row["lease"]["config"] or {})
        try:
            # OAuth.refresh_leased in two steps: the host is known only from the opened lease,
            # and the request waits for its host between them.
            lease = self._oauth(job.tenant)._w(q.claim(job.tenant, row["provider"], row["account"],
                                                       row["lease_token"], self.lease_seconds, row["generation"]))
        except OAuthLeaseLost:
            lease = None
        except HushError as e:  # e.g. the provider was removed meanwhile
            log.warning("skipped %s: %s [%s]", self._where(job), e.message, e.code)
            self._count("skipped")
            return None
        except psycopg.Error as e:  # its row locked (55P03), the database gone: the lease runs out on its own
            log.warning("skipped %s: %s [%s]", self._where(job), type(e).__name__, e.sqlstate)
            self._count("skipped")
            return None
        if lease is None or lease["outcome"] != "claimed":
            log.info("skipped %s: refreshed by another caller meanwhile", self._where(job))
            self._count("skipped")
            return None
        job.lease = lease
        return _origin(job.tenant, lease["config"] or {})

    def _attempt(self, job: Job, answered: Callable[[], None] | None = None,
                 finished: Callable[[str], None] | None = None) -> None:
        """The refresh request of an opened lease; its response goes to the store queue
        (_oauth_batch.py), its failure is recorded now. `answered`: called once the provider
        has answered, before any database work; `finished`: told what happened (the log
        line's verb) once the outcome is known, stored or not."""
        assert job.lease is not None
        row = job.row
        try:
            response, _, _ = self._oauth(job.tenant)._refresh_request(row["provider"], row["account"],
                                                                      row["lease_token"], job.lease, answered)
        except (HushError, psycopg.Error) as e:
            self._outcome(job, None, e, finished)
            return
        refresh = (job.tenant, row["provider"], row["account"], row["lease_token"], job.lease["generation"], response)
        self._store().put(refresh, lambda stored, error: self._outcome(job, stored, error, finished))

    def _outcome(self, job: Job, stored: dict[str, Any] | None, error: BaseException | None,
                 finished: Callable[[str], None] | None) -> None:
        """Count and log how a refresh ended."""
        where = self._where(job)
        if isinstance(error, ReauthorizationRequired):
            outcome = "needs_reauth"
            log.warning("needs_reauth %s: the provider refused the refresh token", where)
        elif isinstance(error, ProviderUnavailable):
            outcome = "deferred"
            log.warning("deferred %s: %s%s", where, error.message,
                        f"; Retry-After {error.retry_after} s" if error.retry_after is not None else "")
        elif isinstance(error, OAuthError):
            outcome = "failed"
            log.warning("failed %s: %s", where, error.message)
        elif isinstance(error, NotStored):  # the provider answered; the database never took it
            outcome = "failed"
            log.error("failed %s: the provider's answer could not be stored in %d attempts [%s]; its lease runs "
                      "out, and the refresh token it replaced may be spent", where, error.attempts, error.code)
        elif isinstance(error, OAuthLeaseLost):  # ran out and another caller stored first: theirs stands
            outcome = "skipped"
            log.info("skipped %s: refreshed by another caller meanwhile", where)
        elif isinstance(error, HushError):  # e.g. the provider was removed meanwhile
            outcome = "skipped"
            log.warning("skipped %s: %s [%s]", where, error.message, error.code)
        elif isinstance(error, psycopg.Error):  # the database went away: what the provider sent may be lost
            outcome = "failed"
            log.error("failed %s: %s [%s]", where, type(error).__name__, error.sqlstate)
        elif error is not None:
            outcome = "failed"
            log.error("failed %s: %s", where, type(error).__name__)
        else:
            assert stored is not None
            outcome = "refreshed"
            log.info("refreshed %s expires_at=%s", where,
                     stored["expires_at"].isoformat() if stored["expires_at"] else "never")
        self._count(outcome)
        if finished is not None:
            finished(outcome)

    def _release(self, job: Job) -> None:
        """Give back a lease whose request was never sent: nothing is recorded. Its row locked
        by another transaction, the lease runs out on its own: no wait (_oauth_db.py)."""
        row = job.row
        try:
            self._run_row(q.release(job.tenant, row["provider"], row["account"], row["lease_token"],
                                    row["generation"], None, False))
        except OAuthLeaseLost:  # it ran out and another call claimed it, or stored tokens
            pass
        except HushError as e:  # its lease runs out on its own
            log.warning("could not give back %s: %s [%s]", self._where(job), e.message, e.code)
        except psycopg.Error as e:
            log.warning("could not give back %s: %s [%s]", self._where(job), type(e).__name__, e.sqlstate)
        self._count("released")

    def refresh_one(self, item: dict[str, Any]) -> str:
        """Refresh one leased connection (a row of claim() or lease()) now; returns what
        happened (the log line's verb) once its result is stored."""
        job = Job(item, 0.0)
        if self._open(job) is None:
            return "skipped"
        outcome: list[str] = []
        ended = threading.Event()

        def finished(verb: str) -> None:
            outcome.append(verb)
            ended.set()
        self._attempt(job, None, finished)
        # Not drain(): that waits for every refresh queued, another thread's locked row's too.
        ended.wait(STORE_SECONDS + RETRY_SECONDS)
        return outcome[0] if outcome else "failed"
