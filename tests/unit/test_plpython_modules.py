"""Unit tests of plpython/hush_plpy without a server: a fake plpy stands in
(MADlib's way). Everything that touches SQL is tested against the real server."""
from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plpython"))

from hush_plpy import crypto, errors, keyring, privileged, validate  # noqa: E402


class FakePlpy:
    class Error(Exception):
        pass

    class SPIError(Exception):
        pass

    logged: list[str] = []

    @classmethod
    def log(cls, msg: str) -> None:
        cls.logged.append(msg)

    @staticmethod
    def prepare(sql, types):
        return sql

    @staticmethod
    def execute(plan, args=None):
        return [{"role": "alice", "session_role": "gateway", "application_name": "app"}]


def test_api_turns_fail_into_plpy_error_with_sqlstate():
    @errors.api
    def fn(plpy, x):
        raise errors.Fail(errors.SECRET_NOT_FOUND, "nope %s" % x, hint="h")

    with pytest.raises(FakePlpy.Error) as ei:
        fn(FakePlpy, 1)
    e = ei.value
    assert (str(e), e.sqlstate, e.hint, type(e).__name__, type(e).__module__) == ("nope 1", "SH010", "h", "hush", "__main__")
    assert not hasattr(e, "detail")


def test_an_unexpected_python_exception_is_sh004_and_names_no_value():
    # The wrapper's catch-all: before, a Python exception hush's code did not raise itself
    # left as PostgreSQL's 38000, with its message (a KeyError quotes what it looked up) and
    # no log line.
    @errors.api
    def boom(plpy, tenant, name):
        raise KeyError("sk_live_canary")

    FakePlpy.logged.clear()
    with pytest.raises(FakePlpy.Error) as ei:
        boom(FakePlpy, "acme", "k")
    e = ei.value
    assert (e.sqlstate, e.detail) == ("SH004", "Python raised KeyError") and "canary" not in str(e)
    assert len(FakePlpy.logged) == 1 and "canary" not in FakePlpy.logged[0]
    line = json.loads(FakePlpy.logged[0].removeprefix("hush-failure "))
    assert (line["sqlstate"], line["tenant"], line["tenant_masked"]) == ("SH004", None, "'acm...' (4 chars)")


def test_no_sql_runs_in_the_failure_path_after_a_cancel():
    # After 57014 the caller lookup would run with no timeout left (the grant check it used to
    # run too, which swallowed a second cancel).
    ran = []

    class Plpy(FakePlpy):
        @staticmethod
        def execute(plan, args=None):
            ran.append(plan)
            return FakePlpy.execute(plan, args)

    for code in ("57014", "55P03", "57P01", "25P02"):
        @errors.api
        def get_thing(plpy, tenant, name):
            raise errors.Fail(code, "canceling statement due to statement timeout")

        with pytest.raises(FakePlpy.Error) as ei:
            get_thing(Plpy, "acme", "k")
        assert ei.value.sqlstate == code and ran == []


def test_api_logs_each_failure_as_one_json_line():
    @errors.api
    def get_thing(plpy, tenant, name):
        raise errors.Fail(errors.TENANT_ACCESS_DENIED, "no")

    FakePlpy.logged.clear()
    for tenant in ("acme", "not a tenant id"):
        with pytest.raises(FakePlpy.Error):
            get_thing(FakePlpy, tenant, "secret-name")
    lines = [json.loads(line.removeprefix("hush-failure ")) for line in FakePlpy.logged]
    # Refused (SH020): the tenant only by its first characters and length, well-formed or not.
    assert lines == [{"action": "get_thing", "tenant": None, "tenant_masked": m, "role": "alice",
                      "session_role": "gateway", "application_name": "app", "sqlstate": "SH020"}
                     for m in ("'acm...' (4 chars)", "'not ...' (15 chars)")]


def test_the_log_line_shows_a_tenant_in_full_only_when_granted():
    caller = {"role": "alice", "session_role": "alice", "application_name": "app"}
    key = "sk_live_" + "0" * 24

    def line(tenant, granted):
        return json.loads(errors.failure_line("get_secret", tenant, "SH010", caller, granted)
                          .removeprefix("hush-failure "))
    assert line("acme", True)["tenant"] == "acme" and "tenant_masked" not in line("acme", True)
    assert (line(key, False)["tenant"], line(key, False)["tenant_masked"]) == (None, "'sk_l...' (32 chars)")
    assert line(None, False)["tenant"] is None and "tenant_masked" not in line(None, False)


@pytest.mark.parametrize("given,shown", [("sk_live_" + "a" * 24, "'sk_l...' (32 chars)"),
                                         ("acme", "'acm...' (4 chars)"), ("ab", "'a...' (2 chars)"), ("a", "'...' (1 char)"),
                                         ("a\x00bcdef", "'a\\x00bc...' (7 chars)"), (None, "NULL"), (3, "int")])
def test_show_never_gives_a_name_in_full(given, shown):
    assert validate.show(given) == shown


def test_every_code_is_class_sh_and_unique():
    assert all(c.startswith("SH") and len(c) == 5 for c in errors.CODES)
    consts = [v for k, v in vars(errors).items() if k.isupper() and isinstance(v, str) and v.startswith("SH")]
    assert sorted(consts) == sorted(errors.CODES)


@pytest.mark.parametrize("tenant,ok", [("acme", True), ("a", True), ("A-1_b.c:d@e", True), ("x" * 63, True),
                                       ("x" * 64, False), ("", False), ("*", False), ("_x", False), ("a b", False),
                                       (None, False)])
def test_tenant_pattern(tenant, ok):
    if ok:
        assert validate.tenant(tenant) == tenant
    else:
        with pytest.raises(errors.Fail) as ei:
            validate.tenant(tenant)
        assert ei.value.code == errors.INVALID_TENANT
    assert validate.tenant("*", allow_all=True) == "*"


@pytest.mark.parametrize("ch", [chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]])
def test_every_control_character_is_refused_in_names(ch):
    with pytest.raises(errors.Fail) as ei:
        validate.name("a" + ch + "b")
    assert ei.value.code == errors.INVALID_NAME


def test_value_limit_counts_utf8_bytes():
    assert validate.value("é" * 5, 10) == "é".encode() * 5
    with pytest.raises(errors.Fail) as ei:
        validate.value("é" * 6, 10)
    assert ei.value.code == errors.VALUE_TOO_LARGE and "é" not in ei.value.message


def test_tags_are_sorted_and_unique():
    assert validate.tags(["b", "a", "b"]) == ["a", "b"]


def test_keyring_parse_comments_blank_lines_and_ids():
    k1, k2 = os.urandom(32), os.urandom(32)
    text = f"# comment\n\n  {base64.b64encode(k1).decode()}  \n{base64.b64encode(k2).decode()}\n"
    keys = keyring.parse(text, "/k")
    assert list(keys.values()) == [k1, k2]
    assert list(keys) == [keyring.key_id(k1), keyring.key_id(k2)]
    assert all(len(kid) == 32 for kid in keys)


@pytest.mark.parametrize("line", ["!!!", base64.b64encode(b"short").decode(), base64.b64encode(os.urandom(33)).decode()])
def test_keyring_bad_line_names_the_line_not_the_content(line):
    with pytest.raises(errors.Fail) as ei:
        keyring.parse("# c\n" + line + "\n", "/k")
    assert ei.value.code == errors.KEY_UNAVAILABLE and "line 2" in ei.value.message and line not in ei.value.message


def test_keyring_file_permissions(tmp_path):
    p = tmp_path / "k"
    p.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    p.chmod(0o600)
    assert len(keyring.read_file(str(p))) == 1
    p.chmod(0o604)
    with pytest.raises(errors.Fail, match="group or others"):
        keyring.read_file(str(p))
    with pytest.raises(errors.Fail, match="does not exist"):
        keyring.read_file(str(tmp_path / "missing"))


def test_seal_open_and_binding():
    root = os.urandom(32)
    wrapped, ct = crypto.seal(root, "kid", "acme", "id-1", 3, b"secret")
    assert b"secret" not in ct
    assert crypto.open_(root, "kid", "acme", "id-1", 3, wrapped, ct) == b"secret"
    for args in [("kid", "globex", "id-1", 3), ("kid", "acme", "id-2", 3), ("kid", "acme", "id-1", 4),
                 ("other", "acme", "id-1", 3)]:
        with pytest.raises(crypto.CryptoError):
            crypto.open_(root, *args, wrapped, ct)
    with pytest.raises(crypto.CryptoError):
        crypto.open_(os.urandom(32), "kid", "acme", "id-1", 3, wrapped, ct)
    # The associated data is length-prefixed: shifting bytes between fields does not collide.
    assert crypto._aad(b"v", "ab", "c", 1, "") != crypto._aad(b"v", "a", "bc", 1, "")


def test_sealed_parts_do_not_open_as_one_another():
    root = os.urandom(32)
    wrapped, ct = crypto.seal_part(root, "kid", b"oauth-tokens", "acme", "id-1", 1, b'{"access_token": "at"}')
    assert crypto.open_part(root, "kid", b"oauth-tokens", "acme", "id-1", 1, wrapped, ct) == b'{"access_token": "at"}'
    for part in (b"value", b"oauth-client-secret", b"oauth-pending"):
        with pytest.raises(crypto.CryptoError):
            crypto.open_part(root, "kid", part, "acme", "id-1", 1, wrapped, ct)
    # Rewrap re-seals the data key of any part alike; the ciphertext is untouched.
    new = os.urandom(32)
    rewrapped = crypto.rewrap(root, "kid", new, "kid2", "acme", "id-1", 1, wrapped)
    assert crypto.open_part(new, "kid2", b"oauth-tokens", "acme", "id-1", 1, rewrapped, ct) == b'{"access_token": "at"}'


def test_oauth_token_response_split_and_checks():
    from hush_plpy import oauth_tokens
    sealed, clear = oauth_tokens.split_response(json.dumps({
        "access_token": "at", "refresh_token": "rt", "id_token": "it", "token_type": "Bearer",
        "expires_in": 3600, "scope": "openid email", "extra": "kept too", "user_token": "ut"}))
    assert sealed == {"access_token": "at", "refresh_token": "rt", "id_token": "it",
                      "secret_fields": {"user_token": "ut"}}
    # The scope is split in the step, with the provider's scope_separator (oauth_response.scopes).
    assert clear == {"token_type": "Bearer", "scope": "openid email", "expires_in": 3600.0,
                     "fields": {"extra": "kept too"}}
    for bad in ('{"refresh_token": "rt"}', '{"access_token": ""}', '[]', '{"access_token": "a", "expires_in": "x"}',
                '{"access_token": "a", "expires_in": true}', '{"access_token": "a", "expires_in": 0}',
                '{"access_token": "a", "expires_in": -1}', '{"access_token": "a", "expires_in": 1e10}'):
        with pytest.raises(errors.Fail) as e:
            oauth_tokens.split_response(bad)
        assert e.value.code == errors.INVALID_ARGUMENT and "rt" not in e.value.message


def test_oauth_state_hash_and_error_text():
    from hush_plpy import oauth_authorize, oauth_refresh
    assert oauth_authorize._state_hash("s" * 16) == __import__("hashlib").sha256(b"s" * 16).digest()
    for bad in (None, "short", "x" * 513, 42):
        with pytest.raises(errors.Fail) as e:
            oauth_authorize._state_hash(bad)
        assert e.value.code == errors.OAUTH_STATE_INVALID
    assert oauth_refresh._error_text("a\nb\x00c" + "x" * 300) == "a b c" + "x" * 195


@pytest.mark.parametrize("uri, ok", [
    ("https://app.example/cb", True), ("http://127.0.0.1:8080/cb?x=1", True), ("http://[::1]:1/cb", True),
    ("com.example.app:/oauth2redirect", True), ("urn:ietf:wg:oauth:2.0:oob", True),
    ("app.example/cb", False), (":/cb", False), ("1http://x/cb", False), ("https:", False),
    ("https://app.example/cb#f", False), ("https:///cb", False), ("https:app.example/cb", False),
    ("https://?x", False), ("https://app.example/c b", False), ("https://app.example/\x85", False),
    ("h" * 2049, False), ("", False), (None, False),
])
def test_uri_form(uri, ok):
    if ok:
        assert validate.uri(uri, "redirect_uri", 2048) == uri
    else:
        with pytest.raises(errors.Fail) as e:
            validate.uri(uri, "redirect_uri", 2048)
        assert e.value.code == errors.INVALID_ARGUMENT and (uri is None or len(uri) < 10 or uri not in e.value.message)


def test_token_alphabets():
    assert validate.token_ok("aZ09-._~" * 6, 43, 128, validate.UNRESERVED)
    assert not validate.token_ok("aZ09-._+" * 6, 43, 128, validate.UNRESERVED)
    assert validate.token_ok("aZ09-_" * 8, 43, 128, validate.BASE64URL)
    assert not validate.token_ok("aZ09-." * 8, 43, 128, validate.BASE64URL)
    assert not validate.token_ok("a" * 42, 43, 128, validate.BASE64URL)
    assert not validate.token_ok(None, 43, 128, validate.BASE64URL)
    assert not validate.token_ok("é" * 43, 43, 128, validate.BASE64URL)


class Dispatching(FakePlpy):
    """A fake plpy whose SPI runs the dispatcher, as the server would run hush._as_owner."""
    owner = privileged.OWNER
    caller = "alice"

    @classmethod
    def prepare(cls, sql, types):
        return sql

    @classmethod
    def execute(cls, plan, args=None):
        assert "hush._as_owner($1, CURRENT_USER)" in plan
        try:
            privileged.run(cls, cls.owner, args[0], cls.caller)
        except FakePlpy.Error as e:  # what a failed SPI statement raises in the caller
            spi = FakePlpy.SPIError("hush: " + str(e))
            spi.spidata = (sum((ord(ch) - ord("0")) << (6 * i) for i, ch in enumerate(e.sqlstate)),
                           getattr(e, "detail", None), getattr(e, "hint", None))
            raise spi from None
        return []


@privileged.step(privileged.OWNER)
def _echo(plpy, caller, x):
    return (caller, x)


@privileged.step(privileged.OWNER)
def _refuse(plpy, caller):
    raise errors.Fail(errors.TENANT_ACCESS_DENIED, "no", hint="ask")


def _not_a_step(plpy, caller):
    return "ran"


def test_a_step_runs_for_the_caller_and_hands_back_its_result():
    assert privileged.call(Dispatching, privileged.OWNER, _echo, 42) == ("alice", 42)
    assert not privileged._tickets and not privileged._results  # used once, nothing left behind


def test_a_steps_error_comes_back_with_its_sqlstate_and_hint():
    with pytest.raises(errors.Fail) as ei:
        privileged.call(Dispatching, privileged.OWNER, _refuse)
    assert (ei.value.code, ei.value.message, ei.value.hint) == ("SH020", "no", "ask")


def test_the_dispatcher_refuses_unknown_used_and_foreign_tickets():
    for ticket in (None, "", "0" * 32, 7):
        with pytest.raises(FakePlpy.Error) as ei:
            privileged.run(FakePlpy, privileged.OWNER, ticket, "alice")
        assert ei.value.sqlstate == "42501"
    # A ticket for another dispatcher's role, or naming a function that is no step, runs nothing.
    for owner, fn in ((privileged.KEYKEEPER, _echo), (privileged.OWNER, _not_a_step)):
        privileged._tickets["t" * 32] = (owner, fn, (1,))
        with pytest.raises(FakePlpy.Error):
            privileged.run(FakePlpy, privileged.OWNER, "t" * 32, "alice")
        assert "t" * 32 not in privileged._tickets and "t" * 32 not in privileged._results
    # A ticket is good once.
    privileged._tickets["u" * 32] = (privileged.OWNER, _echo, (1,))
    privileged.run(FakePlpy, privileged.OWNER, "u" * 32, "alice")
    with pytest.raises(FakePlpy.Error):
        privileged.run(FakePlpy, privileged.OWNER, "u" * 32, "alice")
    privileged._results.clear()


def test_the_direct_libsodium_calls_match_pynacls_bindings():
    """crypto.py calls libsodium through nacl._sodium (a faster first call); its seals are
    PyNaCl's, both ways, and it refuses keys and nonces of the wrong size before libsodium
    reads them."""
    from nacl.bindings import (crypto_aead_xchacha20poly1305_ietf_decrypt as ref_decrypt,
                               crypto_aead_xchacha20poly1305_ietf_encrypt as ref_encrypt)
    key, nonce, aad = os.urandom(32), os.urandom(24), b"aad"
    for message in (b"", b"x", os.urandom(70000)):
        ours = crypto.encrypt(message, aad, nonce, key)
        assert ours == ref_encrypt(message, aad, nonce, key)
        assert crypto.decrypt(ours, aad, nonce, key) == message == ref_decrypt(ours, aad, nonce, key)
        with pytest.raises(crypto.CryptoError):
            crypto.decrypt(ours, b"other", nonce, key)
    for bad_key, bad_nonce in ((key[:31], nonce), (key + b"x", nonce), (key, nonce[:23]), (key, b"")):
        with pytest.raises(crypto.CryptoError):
            crypto.encrypt(b"m", aad, bad_nonce, bad_key)
        with pytest.raises(crypto.CryptoError):
            crypto.decrypt(b"m" * 40, aad, bad_nonce, bad_key)
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt(b"short", aad, nonce, key)


@pytest.mark.parametrize("value", [
    {"tenant": "acme", "rows": [["read", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "db/pässword\n\"x\"", 3,
                                 {"pid": 123, "caller_txid": None, "standby": True}]], "client_addr": None},
    {"b": 1, "a": [], "c": {}, "d": -7, "e": False, "f": "\u2603\U0001F600"},
])
def test_the_records_json_is_canonical_and_reads_back(value):
    """wire.dumps (the read record's JSON without `import json`) is json.dumps with sorted keys
    and no spaces, so the MAC over it is stable; wire.loads reads it back."""
    from hush_plpy import wire
    text = wire.dumps(value)
    assert text == json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert wire.loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", " {}", "{} x", "{\"a\":", "nul", "{'a': 1}"])
def test_the_records_json_refuses_anything_else(text):
    from hush_plpy import wire
    with pytest.raises(ValueError):
        wire.loads(text)


def test_the_records_json_takes_no_float_or_object():
    from hush_plpy import wire
    for value in (1.5, object(), {1: "a"}):
        with pytest.raises((TypeError, AttributeError)):
            wire.dumps(value)
