"""The OAuth worker's batched calls: lease due connections and open them in one
statement (hush.oauth_worker_lease), store many refreshes in one
(hush.oauth_worker_finish). docs/oauth.md, "The OAuth worker".

Through the per-connection functions a refresh is two statements beside its
request: oauth_claim_refresh opening the lease (the refresh token and the
client secret unsealed) and oauth_finish_refresh storing the result, each with
its privileged step, grant check, tenant settings read and commit. Measured on
the loopback bench, that database work cost the worker more than the request
itself. Here it goes by the batch: one step per tenant, set-based statements
(each plpy.execute is a subtransaction), a provider's
client secret unsealed once per call.

Every check of the per-connection functions stays, per connection: the lease
is a credential (only its token's SHA-256 is kept, oauth_lease.py) and a
refresh is stored only with the current lease token and the generation
claimed; the caller's grant on each tenant, its oauth_use on each provider
(oauth_grants.py: outside it, a provider answers as one not registered) and
the tenant's reader_refresh setting; the read record of each lease opened
(oauth_refresh_claim) when the tenant records reads, one oauth_refresh audit
row per refresh stored, each naming the grant that allowed it. A
connection refused (SH075: another call claimed it once its lease ran out, or
stored tokens) comes back with its SQLSTATE in its result row, with a failure
log line as a call of its own would leave, and the others are stored; when a
tenant's step fails as a whole (its grant was revoked meanwhile), each of its
rows carries that error. No token, client secret or lease token is in an
error, a log line or an audit row.

A finish never waits for a row lock. Any role that may use the lease functions
in a tenant (a writer; a reader where reader_refresh is on) can leave a
transaction open holding a connection row's lock (a store, a finish with a
wrong token, and so on), and a wait for it would hold the worker's statement,
with every other tenant's refreshes in it, for as long. A row locked by another
transaction is skipped (SKIP LOCKED) and its refresh comes back with 55P03
(lock_not_available), which the worker stores again later (_oauth_batch.py);
the others are stored.
"""
from __future__ import annotations

import json

from . import access, audit, errors, oauth_base, oauth_grants, oauth_lease, oauth_tokens, oauth_worker
from . import privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, OAUTH_CONNECTION_NOT_FOUND, Fail, api
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

TA, I4, J, B, F8, BOOL = ("pg_catalog.text[]", "pg_catalog.int4[]", "pg_catalog.jsonb[]", "pg_catalog.bytea[]",
                          "pg_catalog.float8[]", "pg_catalog.bool[]")
OWNER, REFRESHER = privileged.OWNER, privileged.REFRESHER
# Refreshes one oauth_worker_finish call takes (the domains of sql/26_oauth_batch.sql say the same).
MAX_BATCH = 1000
# lock_not_available: a connection row another transaction holds locked, skipped.
LOCKED = "55P03"
# A tenant's step that fails with one of these ends the whole statement: a statement
# timeout or a cancel is spent once caught (the other tenants' work would run with none
# left), and after a shutdown request nothing more should run.
ENDS_STATEMENT = frozenset(("57014", "57P01"))

# The connections of one tenant named by (provider, account), each found through the
# primary key whatever the planner makes of the table's statistics (OFFSET 0 keeps the
# lookup per name, where a join may scan every connection of the tenant). A finish locks
# those no other transaction holds and skips the others (see the module's docstring): it
# waits for no lock, so two batches can never deadlock either.
CONNS_SQL = f"""
SELECT x.* FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(p, a),
       LATERAL (SELECT c.provider, {oauth_base.CONN_COLS} FROM hush.oauth_connections c
                 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} u.p AND c.account {EQ} u.a OFFSET 0) x
"""
CONNS_LOCK_SQL = f"""
SELECT x.* FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(p, a),
       LATERAL (SELECT c.ctid AS row_at, c.provider, {oauth_base.CONN_COLS} FROM hush.oauth_connections c
                 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} u.p AND c.account {EQ} u.a
                 FOR UPDATE SKIP LOCKED) x
"""
PROVIDERS_SQL = f"""
SELECT p.name, p.id, p.generation, p.config, p.key_id, p.wrapped_dek, p.ciphertext
  FROM hush.oauth_providers p WHERE p.tenant_id {EQ} $1 AND p.name OPERATOR(pg_catalog.=) ANY ($2)
"""
# oauth_tokens.CONN_UPDATE_SQL for many rows at once: the same columns set (a unit test holds
# the two lists together), each row over the generation its lease claimed; as there, the
# refreshes asked for these connections are answered (oauth_base.ASKED_DONE). $14 holds the
# rows' ctids as the step's locking read found them (locked, they stay put): the rows
# are reached by a TID scan and each takes the values at its place in the arrays. Joined
# by name instead, the planner may loop over every connection of the tenant per refresh
# (the row policy's tenant condition, under-estimated, drives the plan).
UPDATE_SQL = f"""
WITH asked AS (DELETE FROM hush.oauth_refresh_requests r
                USING ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS d(p, a)
                WHERE r.tenant_id {EQ} $1 AND r.provider {EQ} d.p AND r.account {EQ} d.a)
UPDATE hush.oauth_connections c
   SET (generation, grant_type, key_id, wrapped_dek, ciphertext, token_type, scopes, expires_at, has_refresh_token,
        fields) =
       (SELECT c.generation OPERATOR(pg_catalog.+) 1, ($5)[s.i], ($6)[s.i], ($7)[s.i], ($8)[s.i], ($9)[s.i],
               ARRAY(SELECT pg_catalog.jsonb_array_elements_text(($10)[s.i])),
               pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => ($11)[s.i]),
               ($12)[s.i], ($13)[s.i]
          FROM (SELECT pg_catalog.array_position($14, c.ctid) AS i) s),
       status = 'active', last_error = NULL, last_error_at = NULL, lease_holder = NULL, lease_until = NULL,
       lease_token_hash = NULL, failures = 0, next_attempt_at = NULL,
       refreshed_at = pg_catalog.now(), updated_at = pg_catalog.now()
 WHERE c.ctid OPERATOR(pg_catalog.=) ANY ($14) AND c.tenant_id {EQ} $1
   AND c.provider {EQ} ($2)[pg_catalog.array_position($14, c.ctid)]
   AND c.account {EQ} ($3)[pg_catalog.array_position($14, c.ctid)]
   AND c.generation {EQ} ($4)[pg_catalog.array_position($14, c.ctid)]
RETURNING c.provider, c.account, c.generation, c.expires_at
"""
# oauth_base.EVENT_SQL for many connections: `recovered` after failures; one empty NOTIFY (PostgreSQL
# folds identical notifications of a transaction into one anyway).
EVENTS_SQL = """
WITH e AS (INSERT INTO hush.oauth_events (tenant_id, provider, account, event, detail)
           SELECT $1, u.p, u.a, 'recovered', u.d
             FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(p, a, d)
           RETURNING 1)
SELECT pg_catalog.pg_notify('hush_oauth_events', '') WHERE EXISTS (SELECT FROM e)
"""


# Whether reads are recorded is access.audit_reads' rule, decided as the call begins: the
# leases this call takes are a write of its own, after which that rule would record every
# read (a transaction that wrote could hold an uncommitted switch of auditing). What the
# caller's transaction did before still counts.
CLEAN_SQL = f"""
SELECT pg_catalog.txid_current_if_assigned() IS NULL AND NOT ({access.SNAPSHOT}) AS clean
"""
AUDITS_SQL = f"""
SELECT (SELECT t.audit_reads FROM hush.tenants t WHERE t.tenant_id {EQ} $1) IS NOT FALSE AS audits
"""


def _refusal(f: Fail) -> dict:
    return {"sqlstate": f.code, "message": f.message}


def _refused(plpy: Any, action: str, tenant: Any, f: Fail) -> dict:
    """A connection of the batch refused: the log line a call of its own would leave."""
    errors.log_failure(plpy, action, tenant, f.code)
    return _refusal(f)


# -- lease and open ---------------------------------------------------------------------

@api
def worker_lease(plpy: Any, holder: Any, batch_size: Any, window_seconds: Any, lease_seconds: Any,
                 keepalive_seconds: Any) -> list:
    """oauth_worker_claim's leases, each opened as oauth_claim_refresh opens one (the
    refresh token, the provider's config and client secret), in one statement. A row that
    could not be opened carries its SQLSTATE and message instead; its lease runs out."""
    oauth_lease.check_args(holder, lease_seconds, required=True)
    oauth_worker.check_args(window_seconds, keepalive_seconds)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
        raise Fail(INVALID_ARGUMENT, "batch_size must be between 1 and 10000")
    clean = plpy.execute(plan(plpy, "oauth_batch.clean", CLEAN_SQL, []))[0]["clean"]
    claimed = privileged.call(plpy, REFRESHER, oauth_worker.lease_due, holder, batch_size, window_seconds,
                              lease_seconds, keepalive_seconds)
    out = [dict(r, grant_type=None, scopes=None, refresh_token=None, config=None, client_secret=None, sqlstate=None,
                message=None) for r in claimed]
    by_tenant: dict = {}
    for r in out:
        by_tenant.setdefault(r["tenant_id"], []).append(r)
    for tenant, rows in by_tenant.items():
        try:
            opened = privileged.call(plpy, OWNER, _open_leases, tenant, rows, clean)
        except Fail as f:
            if f.code in ENDS_STATEMENT:
                raise
            opened = [_refused(plpy, "worker_lease", tenant, f)] * len(rows)
        for r, o in zip(rows, opened):
            if "fail" in o:  # refused inside the step: logged here, outside it
                o = _refused(plpy, "worker_lease", tenant, o["fail"])
            r.update(o)
    return out


@privileged.step(OWNER)
def _open_leases(plpy: Any, caller: str, tenant: str, leases: list, clean: bool) -> list:
    """In a step: the tenant's leases just claimed (in this statement), opened."""
    ctx = access.enter(plpy, caller, tenant)
    audits = not clean or plpy.execute(plan(plpy, "oauth_batch.audits", AUDITS_SQL, [T]), [tenant])[0]["audits"]
    oauth_lease.rights(plpy, caller, tenant, leases[0]["provider"], leases[0]["account"])
    names = sorted({r["provider"] for r in leases})
    # Claimed under oauth_grants.SERVES in this statement; asked again for the grant each read record names.
    usable = oauth_grants.usable(plpy, ctx, tenant, names)
    rows = {(r["provider"], r["account"]): r for r in plpy.execute(
        plan(plpy, "oauth_batch.conns", CONNS_SQL, [T, TA, TA]),
        [tenant, [r["provider"] for r in leases], [r["account"] for r in leases]])}
    provs = {p["name"]: p for p in plpy.execute(plan(plpy, "oauth_batch.providers", PROVIDERS_SQL, [T, TA]),
                                                [tenant, names])}
    found: list = []
    out: list = []
    for lease in leases:
        row = rows.get((lease["provider"], lease["account"]))
        prov = provs.get(lease["provider"])
        if lease["provider"] not in usable:
            out.append({"fail": oauth_grants.absent(tenant, lease["provider"])})
        elif prov is None:  # removed since: nothing to refresh it with
            out.append({"fail": oauth_grants.absent(tenant, lease["provider"])})
        elif (row is None or row["generation"] != lease["generation"]
              or not oauth_lease.holds(row, lease["lease_token"])):
            out.append({"fail": oauth_lease.lost(tenant, lease["provider"], lease["account"])})
        else:
            out.append(None)
            found.append((lease, row, prov))
    if found and audits:  # the refresh tokens and client secrets leave; the label, never the token
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], lease["provider"], row["generation"],
                             oauth_grants.granted({"via": usable[lease["provider"]]},
                                                  {"account": lease["account"], "holder": row["lease_holder"]}))
                            for lease, row, _ in found],
                           sorted({k for _, row, prov in found for k in oauth_base.key_ids(row, prov)}),
                           action="oauth_refresh_claim")
    secrets: dict = {}
    opened = iter(found)
    for i, slot in enumerate(out):
        if slot is not None:
            continue
        lease, row, prov = next(opened)
        try:
            name = lease["provider"]
            if name not in secrets:
                secrets[name] = oauth_base.provider_secret(plpy, tenant, name, prov)
            refresh_token = oauth_base.open_tokens(plpy, tenant, name, row).get("refresh_token")
        except Fail as f:  # one that does not decrypt does not keep the others from their refresh
            out[i] = {"fail": f}
            continue
        out[i] = {"grant_type": row["grant_type"], "scopes": row["scopes"], "refresh_token": refresh_token,
                  "config": prov["config"], "client_secret": secrets[name]}
    return out


# -- finish ---------------------------------------------------------------------------------

@api
def worker_finish(plpy: Any, tenants: Any, providers: Any, accounts: Any, lease_tokens: Any,
                  generations: Any, responses: Any) -> list:
    """Store many refreshes' responses, each as oauth_finish_refresh stores one: over the
    generation its lease claimed, only with that lease's current token. One result row per
    refresh, in the order given (`item`, from 1): what was stored, or the SQLSTATE and
    message of its refusal."""
    arrays = (tenants, providers, accounts, lease_tokens, generations, responses)
    if any(not isinstance(a, list) for a in arrays) or len({len(a) for a in arrays}) != 1:
        raise Fail(INVALID_ARGUMENT, "tenants, providers, accounts, lease_tokens, generations and responses must "
                   "be arrays of the same length")
    if not 1 <= len(tenants) <= MAX_BATCH:
        raise Fail(INVALID_ARGUMENT, "a batch holds 1 to %d refreshes" % MAX_BATCH)
    results: list = [None] * len(tenants)
    by_tenant: dict = {}
    for i, (tenant, provider_name, account, holder, generation, response) in enumerate(zip(*arrays)):
        base = {"item": i + 1, "tenant_id": tenant, "provider": provider_name, "account": account,
                "generation": None, "expires_at": None, "scopes": None, "fields": None, "secret_fields": None,
                "sqlstate": None, "message": None}
        results[i] = base
        try:
            validate.tenant(tenant)
            validate.name(provider_name, "provider name")
            validate.name(account, "account")
            oauth_lease.check_args(holder, None)
            if not isinstance(generation, int):
                raise Fail(INVALID_ARGUMENT, "a generation must be the one the lease claimed")
            sealed, clear = oauth_tokens.split_response(response, refresh=True)
        except Fail as f:
            base.update(_refused(plpy, "worker_finish", tenant, f))
            continue
        by_tenant.setdefault(tenant, []).append((i, provider_name, account, holder, generation, sealed, clear))
    for tenant, items in by_tenant.items():
        try:
            done = privileged.call(plpy, OWNER, _finish_many, tenant, items)
        except Fail as f:
            if f.code in ENDS_STATEMENT:
                raise
            refusal = _refused(plpy, "worker_finish", tenant, f)
            done = {i: refusal for i, *_ in items}
        for i, o in done.items():
            if "fail" in o:
                o = _refused(plpy, "worker_finish", tenant, o["fail"])
            results[i].update(o)
    return results


@privileged.step(OWNER)
def _finish_many(plpy: Any, caller: str, tenant: str, items: list) -> dict:
    """In a step: a tenant's refreshes checked and stored; {input index: result columns}."""
    ctx = access.enter(plpy, caller, tenant, write=True)
    oauth_lease.rights(plpy, caller, tenant, items[0][1], items[0][2])
    # A provider outside the caller's oauth_use is one that is not registered: no row of it is
    # looked up, locked or stored.
    usable = oauth_grants.usable(plpy, ctx, tenant, [it[1] for it in items])
    access.still_granted(plpy, ctx, list(usable.values()))
    out: dict = {it[0]: {"fail": oauth_grants.absent(tenant, it[1])} for it in items if it[1] not in usable}
    items = [it for it in items if it[1] in usable]
    if not items:
        return out
    names = sorted({(it[1], it[2]) for it in items})
    rows = {(r["provider"], r["account"]): r for r in plpy.execute(
        plan(plpy, "oauth_batch.conns_lock", CONNS_LOCK_SQL, [T, TA, TA]),
        [tenant, [p for p, _ in names], [a for _, a in names]])}
    skipped = [k for k in names if k not in rows]
    locked = {(r["provider"], r["account"]) for r in plpy.execute(
        plan(plpy, "oauth_batch.conns", CONNS_SQL, [T, TA, TA]),
        [tenant, [p for p, _ in skipped], [a for _, a in skipped]])} if skipped else set()
    provs = {p["name"]: p for p in plpy.execute(plan(plpy, "oauth_batch.providers", PROVIDERS_SQL, [T, TA]),
                                                [tenant, sorted({it[1] for it in items})])}
    taken: set = set()  # a connection twice in one batch: its second refresh finds the lease gone
    cols: list = [[] for _ in range(13)]
    stored: list = []
    for i, provider_name, account, holder, generation, sealed, clear in items:
        key = (provider_name, account)
        row = rows.get(key)
        try:
            if row is None and key in locked:  # there, held by another transaction: skipped
                raise Fail(LOCKED, "account %s of tenant %s at OAuth provider %r is locked by another transaction: "
                           "its refresh was not stored" % (validate.show(account), tenant, provider_name),
                           hint="Store it again once that transaction ends (the worker does).")
            if row is None:
                if provider_name not in provs:
                    raise oauth_grants.absent(tenant, provider_name)
                raise Fail(OAUTH_CONNECTION_NOT_FOUND, "account %s of tenant %s is not connected to OAuth provider %r"
                           % (validate.show(account), tenant, provider_name))
            # The current lease's token, even past lease_until: a slow provider's rotated tokens are kept.
            if key in taken or row["generation"] != generation or not oauth_lease.holds(row, holder):
                raise oauth_lease.lost(tenant, provider_name, account)
            config = provs[provider_name]["config"] if provider_name in provs else None
            row_id, common = oauth_tokens.store_values(plpy, ctx, tenant, provider_name, row["grant_type"], sealed,
                                                       clear, row, config, True)
        except Fail as f:
            out[i] = {"fail": f}
            continue
        taken.add(key)
        grant_type, key_id, wrapped_dek, ciphertext, token_type, scopes, expires_in, has_rt, fields = common
        for col, v in zip(cols, (provider_name, account, generation, grant_type, key_id, wrapped_dek, ciphertext,
                                 token_type, json.dumps(scopes), expires_in, has_rt, fields, row["row_at"])):
            col.append(v)
        stored.append((i, provider_name, account, row, row_id, clear, sealed))
    if not stored:
        return out
    p = plan(plpy, "oauth_batch.update", UPDATE_SQL, [T, TA, TA, I4, TA, TA, B, B, TA, J, F8, BOOL, J,
                                                      "pg_catalog.tid[]"])
    written = {(r["provider"], r["account"]): r for r in plpy.execute(p, [tenant, *cols])}
    audited: list = []
    recovered: list = []
    for i, provider_name, account, row, row_id, clear, sealed in stored:
        w = written.get((provider_name, account))
        if w is None:  # locked above: cannot happen; refused rather than reported stored
            out[i] = {"fail": oauth_lease.lost(tenant, provider_name, account)}
            continue
        out[i] = {"generation": w["generation"], "expires_at": w["expires_at"], "scopes": clear["scopes"],
                  "fields": json.dumps(clear["fields"]),
                  "secret_fields": json.dumps(sealed.get("secret_fields") or {})}
        audited.append((row_id, provider_name, w["generation"],
                        oauth_grants.granted({"via": usable[provider_name]},
                                             {k: v for k, v in (("account", account), ("holder", row["lease_holder"]),
                                                                ("left_out", clear.get("left_out") or None))
                                              if v is not None})))
        if row["failures"]:
            recovered.append((provider_name, account, json.dumps({"failures": row["failures"]}, sort_keys=True)))
    audit.record_many(plpy, ctx, tenant, "oauth_refresh", audited)
    if recovered:
        plpy.execute(plan(plpy, "oauth_batch.events", EVENTS_SQL, [T, TA, TA, J]),
                     [tenant, *(list(c) for c in zip(*recovered))])
    return out
