"""The secret API, metadata only: list_secrets, search_secrets, secret_exists(_by_id),
secret_versions. They return no value and write no audit row; a name outside the caller's
`list` prefixes does not exist for them.
"""
from __future__ import annotations

from . import access, privileged, validate
from .access import plan
from .errors import Fail, api, INVALID_ARGUMENT
from .secrets import EQ, KEYS, OWNER, T, not_found, stage_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

# Totals are counted up to COUNT_CAP matches (a scan that stops there), so
# neither the count nor a keyset page costs O(n) in a large tenant.
COUNT_CAP = 1000
META_COLS = """s.id, s.tenant_id, s.name, s.kind, s.description, s.tags, s.metadata, s.current_version AS version,
       s.expires_at, s.created_at, s.updated_at, s.deleted_at, s.max_versions, s.destroy_versions_after,
       s.rotate_every, s.rotated_at, s.pending_version"""
SEARCH_MATCH = """(pg_catalog.strpos(pg_catalog.lower({a}.name), $2) OPERATOR(pg_catalog.>) 0
        OR pg_catalog.strpos(pg_catalog.lower(COALESCE({a}.description, '')), $2) OPERATOR(pg_catalog.>) 0
        OR EXISTS (SELECT 1 FROM pg_catalog.unnest({a}.tags) AS t(tag)
                    WHERE pg_catalog.strpos(pg_catalog.lower(t.tag), $2) OPERATOR(pg_catalog.>) 0))"""
# The count is an uncorrelated scalar subquery: an InitPlan, run once per call
# (as a FROM item it could be rescanned for every row).
PAGE_SQL = f"""
SELECT p.*, LEAST(p.n, {COUNT_CAP}) AS total, p.n OPERATOR(pg_catalog.<=) {COUNT_CAP} AS total_exact
  FROM (SELECT {META_COLS},
               (SELECT pg_catalog.count(*)
                  FROM (SELECT 1 FROM hush.secrets c WHERE {{count_filter}} LIMIT {COUNT_CAP + 1}) AS capped) AS n
          FROM hush.secrets s
         WHERE {{filter}}{{after}}
         ORDER BY s.name
         LIMIT $5 OFFSET $6) AS p
"""
# Parameters, the same for every variant: $1 tenant, $2 prefix (list) or
# lower-cased query (search), $3 tags, $4 include_deleted, $5 limit, $6 offset,
# $7 exact name, $8 after, $9 the prefixes the caller may list under.
# The offset is int8: page x per_page may pass an int4's range (it reads an empty page).
PAGE_TYPES = [T, T, "pg_catalog.text[]", "pg_catalog.bool", "pg_catalog.int4", "pg_catalog.int8", T, T,
              "pg_catalog.text[]"]
# The caller's prefixes filter the page and its count alike; the scan starts at the first.
SCOPED = """{a}.name OPERATOR(pg_catalog.>=) (SELECT pg_catalog.min(p.p) FROM pg_catalog.unnest($9) AS p(p))
   AND {a}.name OPERATOR(pg_catalog.^@) ANY ($9)"""


def _page_plan(plpy: Any, search: bool, prefix: bool, tags: bool, deleted: bool, exact: bool, after: bool,
               scoped: bool = False) -> Any:
    """One prepared plan per combination of filters, each with only the conditions
    it needs: `name > $8` and `tenant_id = $1` then drive an index scan on
    (tenant_id, name) that stops after one page, which an `$8 IS NULL OR ...`
    form would not. `scoped`: the caller may list under some prefixes only (a
    whole-tenant grant, '', needs no filter)."""
    key = "page.%d%d%d%d%d%d%d" % (search, prefix, tags, deleted, exact, after, scoped)
    p = access.cached_plan(key)
    if p is None:
        conds = [f"{{a}}.tenant_id {EQ} $1"]
        if not deleted:
            conds.append("{a}.deleted_at IS NULL")
        if search:
            conds.append(SEARCH_MATCH)
        if prefix:
            conds.append("{a}.name OPERATOR(pg_catalog.>=) $2 AND pg_catalog.starts_with({a}.name, $2)")
        if tags:
            conds.append("{a}.tags OPERATOR(pg_catalog.@>) $3")
        if exact:
            conds.append(f"{{a}}.name {EQ} $7")
        if scoped:
            conds.append(SCOPED)
        where = "\n   AND ".join(conds)
        sql = PAGE_SQL.format(count_filter=where.format(a="c"), filter=where.format(a="s"),
                              after=" AND s.name OPERATOR(pg_catalog.>) $8" if after else "")
        p = plan(plpy, key, sql, PAGE_TYPES)
    return p


def _list(plpy: Any, tenant: str, page: int, per_page: int, prefix: Any, tags: Any, include_deleted: bool,
          exact: Any = None, after: Any = None, scope: Any = None) -> list:
    p = _page_plan(plpy, False, prefix is not None, tags is not None, bool(include_deleted), exact is not None,
                   after is not None, scope is not None)
    return list(plpy.execute(p, [tenant, prefix, tags, bool(include_deleted), per_page, (page - 1) * per_page,
                                 exact, after, scope]))


@api
def list_secrets(plpy: Any, tenant: str, page: Any, per_page: Any, name_prefix: Any, tags: Any,
                 include_deleted: Any, after: Any) -> list:
    """Sorted by name; tags match when the secret has all of them; `after` = keyset pagination."""
    validate.tenant(tenant)
    page, per_page = validate.page(page, per_page)
    if tags is not None:
        validate.tags(tags)
    return privileged.call(plpy, OWNER, _list_step, tenant, page, per_page, name_prefix, tags, include_deleted, after)


@privileged.step(OWNER)
def _list_step(plpy: Any, caller: str, tenant: str, page: int, per_page: int, prefix: Any, tags: Any,
               include_deleted: Any, after: Any) -> list:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    if not ctx["prefixes"]:
        return []
    from . import scope
    return _list(plpy, tenant, page, per_page, prefix, tags, include_deleted, after=after, scope=scope.listed(ctx["prefixes"]))


@api
def search_secrets(plpy: Any, tenant: str, query: Any, page: Any, per_page: Any, after: Any) -> list:
    """Case-insensitive substring match on name, description and tags; live secrets only."""
    validate.tenant(tenant)
    page, per_page = validate.page(page, per_page)
    if not query:
        raise Fail(INVALID_ARGUMENT, "query must not be empty")
    return privileged.call(plpy, OWNER, _search, tenant, query.lower(), page, per_page, after)


@privileged.step(OWNER)
def _search(plpy: Any, caller: str, tenant: str, query: str, page: int, per_page: int, after: Any) -> list:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    if not ctx["prefixes"]:
        return []
    from .scope import listed
    scoped = listed(ctx["prefixes"])
    p = _page_plan(plpy, True, False, False, False, False, after is not None, scoped is not None)
    return list(plpy.execute(p, [tenant, query, None, False, per_page, (page - 1) * per_page, None, after,
                                 scoped]))


# $3: the prefixes the caller may list under; a secret outside them does not exist for it.
EXISTS_SQL = f"""
SELECT EXISTS (SELECT 1 FROM hush.secrets s
                WHERE s.tenant_id {EQ} $1 AND {{col}} {EQ} $2 AND s.deleted_at IS NULL
                  AND s.name OPERATOR(pg_catalog.^@) ANY ($3)) AS e
"""


@api
def secret_exists(plpy: Any, tenant: str, name: str) -> bool:
    validate.tenant(tenant)
    validate.name(name)
    return privileged.call(plpy, OWNER, _exists, tenant, "name", name)


@api
def secret_exists_by_id(plpy: Any, tenant: str, secret_id: Any) -> bool:
    validate.tenant(tenant)
    if secret_id is None:
        raise Fail(INVALID_ARGUMENT, "id must not be NULL")
    return privileged.call(plpy, OWNER, _exists, tenant, "id", secret_id)


@privileged.step(OWNER)
def _exists(plpy: Any, caller: str, tenant: str, by: str, key: Any) -> bool:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    col, typ = KEYS[by]
    p = plan(plpy, "exists." + by, EXISTS_SQL.format(col=col), [T, typ, "pg_catalog.text[]"])
    return bool(plpy.execute(p, [tenant, key, ctx["prefixes"]])[0]["e"])


VERSIONS_SQL = f"""
SELECT v.version, v.created_at, v.created_by, v.key_id, v.destroyed_at IS NOT NULL AS destroyed, v.destroyed_at,
       v.version {EQ} s.current_version AS is_current, {stage_of("v.version")} AS stage
  FROM hush.secrets s
  JOIN hush.secret_versions v ON v.tenant_id {EQ} s.tenant_id AND v.secret_id {EQ} s.id
 WHERE s.tenant_id {EQ} $1 AND s.name {EQ} $2
 ORDER BY v.version
"""


@api
def secret_versions(plpy: Any, tenant: str, name: str) -> list:
    """Every version, including those of a soft-deleted secret; metadata only."""
    validate.tenant(tenant)
    validate.name(name)
    return privileged.call(plpy, OWNER, _versions, tenant, name)


@privileged.step(OWNER)
def _versions(plpy: Any, caller: str, tenant: str, name: str) -> list:
    access.enter(plpy, caller, tenant, cap="list", name=name, missing=not_found("name", name, tenant))
    rows = plpy.execute(plan(plpy, "versions", VERSIONS_SQL, [T, T]), [tenant, name])
    if not rows:
        raise not_found("name", name, tenant)
    return list(rows)
