"""What hush keeps of a token endpoint response, and for which grants a
provider's tokens may be stored.

RFC 6749 5.1 names six members; providers send more, which a caller needs to
use the token: Salesforce's instance_url and id, Zoho's api_domain, RFC 8693's
issued_token_type, Slack's team and authed_user (a second token, the user's).
Nothing is dropped. The six go where they always went (the tokens sealed; type,
scopes and expiry in clear columns). Every other member is kept by one rule,
applied here and nowhere else (the client does not classify):

- A member whose name says it may carry a credential is secret, whole,
  whatever it holds: sealed with the tokens, returned by token reads only
  (`secret_fields`), never in a clear column, a listing or an audit row. A
  name says so when it contains one of SECRET_WORDS anywhere (token, secret,
  password, key, assertion, signature, webhook, ...: `accesstoken`, `apikey`
  too), or when one of its components is one of SECRET_COMPONENTS (jwt,
  bearer, sid, ticket, otp, pin, pwd, pass, auth, mac, hmac). Components: the
  name split on anything but letters and digits (_ - . spaces) and between
  camelCase words, lowercased, a plural's s dropped; so `x-auth`, `userPin`
  and `session_jwts` are secret, while `authed_user` is not (`auth` is not
  one of its components) nor is `pinterest_id`. These short words match whole
  components only, because as substrings they are in too many harmless names.
- A string that is a URL which may itself be a credential (a capability URL)
  is secret wherever it is, whatever its member's name: a URL with userinfo
  (`https://user:pass@host`), a query string (`?sig=...`) or a fragment, or
  one of whose host or path components is a word of either list or "hook"
  (`https://hooks.slack.com/services/...`, `.../api/webhooks/...`). Other URLs
  (Salesforce's instance_url and id, Zoho's api_domain) stay clear.
- Except what such a name holds when it cannot carry one: true, false or null;
  a type (token_type, issued_token_type: a short string under a name ending in
  "type"); a lifetime (refresh_token_expires_in: a number under a name ending
  in an expiry word).
- An object under any other name is split by the same rule, member by member
  (Slack's authed_user: id and scope in clear, access_token sealed). An array
  is sealed whole when anything in it would be. Below MAX_DEPTH levels,
  whatever nests deeper is sealed whole.
- Everything else is clear: the connection's `fields`, returned by token() and
  connections(), at most MAX_FIELDS_BYTES of JSON.

Names decide because values cannot be told apart, so the rule fails closed: a
name that might carry a credential is taken to. `webhook` is in the list for
Slack's and Discord's incoming_webhook.url, a URL anyone holding it may post
to. `signature` is too: Salesforce's is an HMAC keyed with the client secret
over id and issued_at, which are in clear, so in clear it would let anyone
who reads the row test guesses of the sealed client secret offline.
"""
from __future__ import annotations

import json
import re  # json imports it anyway

from .errors import INVALID_ARGUMENT, OAUTH_GRANT_NOT_ENABLED, Fail

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (importing typing costs a new connection's first call)
    from typing import Any

# The members RFC 6749 5.1 names: each has its own place.
STANDARD = frozenset(("access_token", "refresh_token", "id_token", "token_type", "expires_in", "scope"))
SEALED = ("access_token", "refresh_token", "id_token")
SECRET_WORDS = ("token", "secret", "password", "passwd", "passphrase", "assertion", "credential", "signature", "key",
                "code", "cookie", "session", "webhook")
SECRET_COMPONENTS = frozenset(("jwt", "bearer", "sid", "ticket", "otp", "pin", "pwd", "pass", "auth", "mac", "hmac"))
# What else makes a URL's host or path a capability: whoever holds it may post there.
URL_COMPONENTS = frozenset(("hook", "webhook"))
# A name's or a URL's components: runs of letters and digits, split between camelCase words
# (userPIN: user, pin; PINCode: pin, code).
_COMPONENT = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
LIFETIME_SUFFIXES = ("expires_in", "expires_at", "expires", "expiry", "expiration", "lifetime", "ttl")
MAX_TYPE_CHARS = 200
# The scopes a token response may grant (docs/reference.md, "Limits"): more than an authorization may
# ask for (100), since a provider may list every scope an app holds; no more, since they go
# to a clear column that every listing returns.
MAX_SCOPES, MAX_SCOPE_CHARS = 1000, 1000
MAX_DEPTH = 8
MAX_FIELDS_BYTES = 16384
MAX_SECRET_FIELDS_BYTES = 65536  # as the whole response (oauth_base.MAX_TOKEN_BYTES)
# Ten years. A provider that means "never" leaves expires_in out (RFC 6749 makes it optional);
# 0 or less is refused, as stored it would make the token due at once, round after round.
MAX_EXPIRES_IN = 315360000
# Scopes are space-separated (RFC 6749 3.3); Slack and Facebook answer with commas.
SEPARATORS = (" ", ",", ";", "|")
MAX_GRANT_TYPES, MAX_GRANT_TYPE_CHARS = 32, 200


def components(name: str) -> list:
    """A name's (or a URL's) components, lowercased, a plural's s dropped."""
    out = []
    for w in _COMPONENT.findall(name):
        w = w.lower()
        out.append(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def _secret_name(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in SECRET_WORDS) or any(c in SECRET_COMPONENTS for c in components(key))


def capability_url(value: str) -> bool:
    """Whether a string is a URL that may itself be a credential (the module's docstring)."""
    value = value.strip()
    scheme = _SCHEME.match(value)
    if scheme is None:
        return False
    rest = value[scheme.end():]
    cut = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority or "?" in tail or "#" in tail:
        return True
    return any(c in URL_COMPONENTS or c in SECRET_COMPONENTS or c in SECRET_WORDS
               for c in components(authority + "/" + tail))


def _harmless(key: str, value: Any) -> bool:
    """What a name that sounds secret holds when it can carry no credential."""
    if value is None or isinstance(value, bool):
        return True
    k = key.lower()
    if isinstance(value, str):
        return k.endswith("type") and len(value) <= MAX_TYPE_CHARS
    return isinstance(value, (int, float)) and k.endswith(LIFETIME_SUFFIXES)


def split(obj: dict, depth: int = 1) -> tuple[dict, dict]:
    """An object's members -> (the clear ones, the secret ones), by the rule above;
    `depth` is obj's own level (the response's members are at level 1)."""
    clear: dict = {}
    secret: dict = {}
    for key, value in obj.items():
        if (_secret_name(key) and not _harmless(key, value)) or (isinstance(value, str) and capability_url(value)):
            secret[key] = value
        elif isinstance(value, dict):
            if depth >= MAX_DEPTH:
                secret[key] = value
                continue
            c, s = split(value, depth + 1)
            if s:
                secret[key] = s
            if c or not s:
                clear[key] = c
        elif isinstance(value, list):
            (secret if _holds_secret(value, depth) else clear)[key] = value
        else:
            clear[key] = value
    return clear, secret


def _holds_secret(items: list, depth: int) -> bool:
    for item in items:
        if isinstance(item, str) and capability_url(item):
            return True
        if isinstance(item, (dict, list)) and depth >= MAX_DEPTH:
            return True
        if isinstance(item, dict) and split(item, depth + 1)[1]:
            return True
        if isinstance(item, list) and _holds_secret(item, depth + 1):
            return True
    return False


def expires_in(value: Any) -> Any:
    """Seconds as a float, or None (no expiry); refused outside 1 .. MAX_EXPIRES_IN."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())  # Azure AD v1 and others send "3599"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= MAX_EXPIRES_IN:
        raise Fail(INVALID_ARGUMENT, "expires_in must be a number of seconds from 1 to %d (ten years), or left out "
                   "for a token that does not expire; 0 or less is refused: stored, such a token would be due "
                   "for a refresh at once, round after round" % MAX_EXPIRES_IN)
    return float(value)


# What a refresh never leaves out, whatever its size: what it is for.
KEPT = ("access_token", "refresh_token", "expires_in")


def token_response(tokens: dict, refresh: bool = False, limit: Any = None) -> tuple[dict, dict]:
    """A token endpoint response (a JSON object) -> (what is sealed: the tokens and
    secret_fields; what is clear: token_type, scope as it came, expires_in, fields).

    A store refuses a response with a member over its limit (docs/reference.md, "Limits"). A refresh
    (`refresh`) stores what the provider has issued all the same, since it may have spent
    the refresh token presented: it leaves out only what is over a limit (a token_type
    over MAX_TYPE_CHARS, fields over MAX_FIELDS_BYTES by their largest members, scopes past
    MAX_SCOPES: scopes() below; with `limit`, the response's members beyond the tokens
    themselves, largest first, until it fits) and names each in clear["left_out"] (names of
    members, never values: the audit row's detail). Without a usable access_token a
    response is refused either way."""
    if not isinstance(tokens.get("access_token"), str) or not tokens["access_token"]:
        raise Fail(INVALID_ARGUMENT, "tokens must hold an access_token")
    left_out: list = []

    def note(what: str) -> None:
        if what not in left_out:
            left_out.append(what)

    def over(what: str, message: str) -> None:
        if not refresh:
            raise Fail(INVALID_ARGUMENT, message)
        note(what)

    if limit is not None:
        tokens = _cut(tokens, limit, KEPT, lambda k: note(k if k in STANDARD else "fields"))
        if _size(tokens) > limit:
            raise Fail(INVALID_ARGUMENT, "the tokens of this response are more than %d bytes of JSON" % limit)
    fields, secret_fields = split({k: v for k, v in tokens.items() if k not in STANDARD})
    size = _size(fields)
    if size > MAX_FIELDS_BYTES:
        over("fields", "the token response's non-secret fields are %d bytes of JSON; the limit is %d"
             % (size, MAX_FIELDS_BYTES))
        fields = _cut(fields, MAX_FIELDS_BYTES, (), lambda k: None)
    sealed = {k: tokens[k] for k in SEALED if isinstance(tokens.get(k), str)}
    if secret_fields:
        sealed["secret_fields"] = secret_fields
    token_type = tokens.get("token_type")
    if not isinstance(token_type, str):
        token_type = None
    elif len(token_type) > MAX_TYPE_CHARS:
        over("token_type", "the token response's token_type is %d characters; the limit is %d"
             % (len(token_type), MAX_TYPE_CHARS))
        token_type = None
    clear = {"token_type": token_type, "scope": tokens.get("scope"),
             "expires_in": expires_in(tokens.get("expires_in")), "fields": fields}
    if refresh:
        clear["left_out"] = left_out
    return sealed, clear


def _size(obj: Any) -> int:
    """Characters of JSON, as the limits count them (merged() too)."""
    return len(json.dumps(obj))


def _cut(obj: dict, limit: int, keep: tuple, dropped: Any) -> dict:
    """obj without its largest members (but those in `keep`) until it fits in `limit`
    characters of JSON; dropped(name) for each left out."""
    out = dict(obj)
    sizes = {k: _size({k: v}) for k, v in out.items()}  # a member's text and its ", " in the whole
    total = _size(out)
    for k in sorted((k for k in out if k not in keep), key=lambda k: -sizes[k]):
        if total <= limit:
            break
        del out[k]
        total -= sizes[k]
        dropped(k)
    return out


def scopes(scope: Any, separator: Any, left_out: Any = None) -> list:
    """A response's scope as a list: split on the provider's separator (whitespace by
    default); in a list, only non-empty strings are scopes (anything else is dropped).
    Past MAX_SCOPES, or a scope over MAX_SCOPE_CHARS: refused, or for a refresh (a list
    `left_out`) left out, which keeps the scopes stored."""
    if isinstance(scope, list):
        items = [s for s in scope if isinstance(s, str) and s]
    elif not isinstance(scope, str):
        return []
    elif separator not in SEPARATORS or separator == " ":
        items = scope.split()
    else:
        items = [s.strip() for s in scope.split(separator) if s.strip()]
    if len(items) > MAX_SCOPES or any(len(s) > MAX_SCOPE_CHARS for s in items):
        if left_out is None:
            raise Fail(INVALID_ARGUMENT, "the token response grants %d scopes%s; the limit is %d scopes of at most %d "
                       "characters each" % (len(items), " (one of more than %d characters)" % MAX_SCOPE_CHARS
                                            if any(len(s) > MAX_SCOPE_CHARS for s in items) else "",
                                            MAX_SCOPES, MAX_SCOPE_CHARS))
        if "scope" not in left_out:
            left_out.append("scope")
        return []
    return items


def merged(old: Any, new: dict, limit: int) -> dict:
    """A refresh's fields over the stored ones: a member it carries replaces the stored one,
    one it does not carry is kept (a refresh response often repeats only part of the grant's),
    while the whole fits in `limit` bytes of JSON; else the refresh's alone, so that refreshes
    with ever new members cannot grow a row without end."""
    out = {**{k: v for k, v in (old or {}).items() if k not in new}, **new}
    return out if len(json.dumps(out)) <= limit else new


def check_config(conf: dict) -> None:
    """A provider config's scope_separator and grant_types, when it has them."""
    sep = conf.get("scope_separator")
    if sep is not None and sep not in SEPARATORS:
        raise Fail(INVALID_ARGUMENT, "config's scope_separator must be one of %s (a space by default; Slack: a comma)"
                   % ", ".join(repr(s) for s in SEPARATORS))
    grants = conf.get("grant_types")
    if grants is not None and (not isinstance(grants, list) or not 1 <= len(grants) <= MAX_GRANT_TYPES or not all(
            isinstance(g, str) and 1 <= len(g) <= MAX_GRANT_TYPE_CHARS for g in grants)):
        raise Fail(INVALID_ARGUMENT, "config's grant_types must list 1 to %d grant types the client may use, or be "
                   "left out (then any grant type is allowed)" % MAX_GRANT_TYPES)


def require_grant(config: Any, grant_type: str, tenant: str, provider_name: str) -> None:
    """SH081 unless the provider's config enables grant_type. A config without grant_types
    (a provider saved from SQL before they were enforced) allows any, as it always did."""
    conf = json.loads(config) if isinstance(config, str) else (config or {})  # jsonb arrives as its text
    allowed = conf.get("grant_types")
    if not isinstance(allowed, list) or grant_type in allowed:  # no list: saved before 0.5.0 checked one
        return
    raise Fail(OAUTH_GRANT_NOT_ENABLED, "grant type %r is not enabled for OAuth provider %r of tenant %s (its "
               "grant_types: %s)" % (grant_type, provider_name, tenant, ", ".join(str(g) for g in allowed)),
               hint="Register the provider again with it in grant_types (register_provider(grant_types=...)).")
