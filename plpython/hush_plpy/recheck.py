"""A read's grant, checked again where its record commits.

A revoke must bite at the reader's next statement, in sessions already open
too. The reading step checks the caller's grants in its own snapshot, which a
REPEATABLE READ or SERIALIZABLE transaction took before the revoke: the check
would still pass there. Every read of a value or a token is recorded, in any
isolation level other than READ COMMITTED always (access.audit_reads), and the
record is committed by hush._record() on hush's own connection, in a
transaction of its own, before the value leaves (recorder.py). So that is where
the grants are asked again, with the runtime rule (access.vias), in the same
statement that stores the rows: a row its reader may no longer read stores
nothing at all, and the reader fails with SH020 and hands out nothing. In READ
COMMITTED the same check closes the gap between the read's statement and its
record.

The grant that allowed each read is looked up there too, for its row's
`detail`: the reading step needs no round trip of its own for it.
"""
from __future__ import annotations

from . import access, privileged

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

# The capability each action that records a read needs on the row's name (the secret's, or
# the OAuth provider's), as the reading step requires it (secrets.py, oauth.py, oauth_batch.py).
# hush._record stores no other action. None: nothing is checked. A refused callback hands
# nothing out, and the trail keeps the refusal whatever the caller holds by then.
CAPS = {
    "read": "read",
    "oauth_token_read": "oauth_use",             # oauth_token, oauth_access_token
    "oauth_refresh_claim": "oauth_use",          # oauth_claim_refresh, the worker's leases
    "oauth_tokens_read": "oauth_manage",         # oauth_connection_tokens (revocation)
    "oauth_client_secret_read": "oauth_manage",  # oauth_provider
    "oauth_callback": "oauth_manage",            # oauth_consume
    "oauth_callback_refused": None,
}

# $1 tenant, $2 the reader (db_role), $3..$5 who and where, $6..$10 the rows (action, id,
# name, version, detail), $11 the capability every row needs (NULL: none). Stores every
# row or none; answers with the places (from 1) of the rows refused. t first: hush.tenant
# must be set before the INSERT's row policy looks at it.
STORE_SQL = f"""
WITH t AS MATERIALIZED (
  SELECT {privileged.set_tenant("$1")} AS tenant,
         pg_catalog.set_config('synchronous_commit', 'on', true) AS durable,
         {access.superuser("$2")} AS superuser),
     u AS MATERIALIZED (
  SELECT u.action, u.id, u.name, u.version, u.detail, u.n, c.via,
         ($11 IS NULL OR c.via IS NOT NULL OR t.superuser) AS allowed
    FROM t CROSS JOIN ROWS FROM (pg_catalog.unnest($6::pg_catalog.text[]), pg_catalog.unnest($7::pg_catalog.uuid[]),
                                 pg_catalog.unnest($8::pg_catalog.text[]), pg_catalog.unnest($9::pg_catalog.int4[]),
                                 pg_catalog.unnest($10::pg_catalog.jsonb[]))
                       WITH ORDINALITY AS u(action, id, name, version, detail, n)
    LEFT JOIN ({access.vias("$1", "$2", "$11", "$8")}) AS c ON c.i OPERATOR(pg_catalog.=) u.n),
     stored AS (
  INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, session_role,
                              application_name, client_addr, detail)
  SELECT t.tenant, u.action, u.id, u.name, u.version, $2, $3, $4, $5,
         CASE WHEN u.via IS NULL THEN u.detail
              ELSE COALESCE(u.detail, '{{}}'::pg_catalog.jsonb) OPERATOR(pg_catalog.||)
                   pg_catalog.jsonb_build_object('grant', pg_catalog.jsonb_build_object(
                       'tenant', u.via[1], 'role', u.via[2], 'prefix', u.via[3])) END
    FROM t CROSS JOIN u
   WHERE NOT EXISTS (SELECT FROM u WHERE NOT u.allowed)
   ORDER BY u.n
  RETURNING 1)
SELECT pg_catalog.array_agg(u.n ORDER BY u.n) FILTER (WHERE NOT u.allowed) AS refused,
       (SELECT pg_catalog.count(*) FROM stored) AS stored
  FROM u
"""
STORE_TYPES = ["pg_catalog.text", "pg_catalog.name", "pg_catalog.name", "pg_catalog.text", "pg_catalog.inet",
               "pg_catalog.text[]", "pg_catalog.uuid[]", "pg_catalog.text[]", "pg_catalog.int4[]",
               "pg_catalog.jsonb[]", "pg_catalog.text"]


def needs(rows: list) -> tuple[bool, Any]:
    """(whether hush._record may store these rows at all, the capability they need): rows of
    one action that records a read. A record's rows come from one record_reads call."""
    actions = {r[0] for r in rows}
    if len(actions) > 1 or not actions <= set(CAPS):
        return False, None
    return True, CAPS[actions.pop()] if actions else None


def refused(caller: str, tenant: str, action: str, rows: list, revoked: Any) -> Any:
    """In the reading step: SH020 for the rows (id, name, ...) that hush._record refused
    because the caller's grants no longer allow them (recorder.Revoked: how many, and the
    places of the first few). Names only as validate.show gives them, as access.refuse does."""
    from . import validate
    from .errors import TENANT_ACCESS_DENIED, Fail
    # Only rows the store step named: none named, only how many.
    names = list(dict.fromkeys(rows[i - 1][1] for i in revoked.places if 0 < i <= len(rows)))
    count = max(revoked.count, len(names))
    what = (validate.show(names[0]) if count == 1 and names else
            "%d of %d %s%s" % (count, len(rows), "secrets" if action == "read" else "reads",
                               ": " + ", ".join(validate.show(n) for n in names) if names else ""))
    return Fail(TENANT_ACCESS_DENIED, "role %s may no longer %s %s in tenant %s: nothing was read or recorded"
                % (caller, CAPS[action] or action, what, tenant),
                hint="A grant that allowed it was revoked after this read began (after the snapshot of a "
                     "REPEATABLE READ or SERIALIZABLE transaction); hush.effective_access(role, tenant) shows "
                     "what the role holds now.")
