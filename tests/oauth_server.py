"""A real OAuth 2.0 / OpenID Connect authorization server on loopback, built
from authlib's own server components (Flask integration): authorization code
with PKCE (required) and OIDC ID tokens (RS256, JWKS), RFC 9207 `iss` in the
callback, client credentials, password, refresh token with rotation, device
code (RFC 8628), revocation (RFC 7009), token exchange (RFC 8693, a custom
grant), discovery and userinfo. Tests drive it like a browser would (GET the
authorization URL, follow nothing, read the redirect) and through `control`:
token request counts, injected 503s, token lifetime, tampering switches,
token responses shaped like Slack's or Salesforce's, ID tokens on other grants,
redirects, error descriptions that echo what a request carried.

Storage is in memory, behind one lock; the server runs in a thread with
werkzeug's threaded server, so clients in other processes reach it too.

The records it keeps and the switches of `control` are in oauth_server_records.py.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError
from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey, RSAKey
from werkzeug.serving import make_server

from oauth_server_records import Client, Code, Control, DeviceCredential, Token

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
USERS = {"alice": "alice-password", "bob": "bob-password"}
JWT_AUTH = ["private_key_jwt", "client_secret_jwt"]  # RFC 7523 client assertions, on every endpoint
ASSERTION_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
                  "HS256", "HS384", "HS512"]


class OAuthServer:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.control = Control()
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}          # by access token
        self.refresh: dict[str, Token] = {}         # by refresh token
        self.devices: dict[str, DeviceCredential] = {}
        self.jtis: set[str] = set()                 # client assertions' jti seen (RFC 7523 3: no replay)
        self.device_grants: dict[str, tuple[str, bool]] = {}  # user_code -> (user, approved)
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.app = Flask("hush-test-oauth-server")
        self._http = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self.server = AuthorizationServer(self.app, query_client=self.clients.get, save_token=self._save_token)
        self.server.register_token_generator("default", self._generate_token)
        self._grants()
        self._routes()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> OAuthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()

    def url(self, path: str) -> str:
        return self.issuer + path

    def add_client(self, client_id: str, secret: str | None, auth_method: str = "client_secret_basic",
                   grant_types: list[str] | None = None, redirect_uris: list[str] | None = None,
                   jwks: dict[str, Any] | None = None) -> Client:
        c = Client(client_id, secret, redirect_uris or ["http://127.0.0.1/callback"], auth_method,
                   grant_types or ["authorization_code", "refresh_token", "client_credentials", "password",
                                   DeviceCodeGrant.GRANT_TYPE, TOKEN_EXCHANGE], jwks=jwks)
        self.clients[client_id] = c
        return c

    # -- tokens ------------------------------------------------------------------------
    def _generate_token(self, grant_type: str, client: Client, user: Any = None, scope: str | None = None,
                        expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        token = {"token_type": "Bearer", "access_token": "at-" + secrets.token_urlsafe(24),
                 "expires_in": self.control.token_lifetime, "scope": scope or ""}
        if include_refresh_token and client.check_grant_type("refresh_token"):
            token["refresh_token"] = "rt-" + secrets.token_urlsafe(24)
        return token

    def _save_token(self, token: dict[str, Any], req: Any) -> None:
        with self.lock:
            t = Token(req.client.client_id, req.user, token.get("scope", ""), token["access_token"],
                      token.get("refresh_token"), time.time(), token["expires_in"])
            self.tokens[t.access_token] = t
            if t.refresh_token:
                self.refresh[t.refresh_token] = t

    def _grants(self) -> None:
        outer = self

        class AuthorizationCode(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                with outer.lock:
                    outer.codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri,
                                             req.payload.scope or "", req.user, req.payload.data.get("nonce"),
                                             req.payload.data.get("code_challenge"),
                                             req.payload.data.get("code_challenge_method"))

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                c = outer.codes.get(code)
                return c if c and c.client_id == client.client_id else None

            def delete_authorization_code(self, code: Code) -> None:
                outer.codes.pop(code.code, None)

            def authenticate_user(self, code: Code) -> str:
                return code.user

        class OIDC(OpenIDCode):
            def resolve_client_private_key(self, client: Client) -> Any:
                return outer.key

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": outer.issuer, "aud": [client.client_id]}

            def get_encode_header(self, client: Client) -> dict[str, Any]:
                return {"alg": "RS256", "kid": "k1"}

            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return False

            def generate_user_info(self, user: str, scope: str) -> dict[str, Any]:
                return {"sub": f"sub-{user}", "email": f"{user}@example.com"}

            def get_authorization_code_claims(self, code: Any) -> dict[str, Any]:
                claims = super().get_authorization_code_claims(code)
                if outer.control.wrong_nonce:
                    claims["nonce"] = "not-the-nonce"
                return claims

            def process_token(self, grant: Any, response: Any) -> Any:
                token = super().process_token(grant, response)
                if outer.control.tamper_id_token:
                    head, body, sig = token["id_token"].split(".")
                    token["id_token"] = ".".join([head, body, ("A" if sig[0] != "A" else "B") + sig[1:]])
                return token

        class ClientCredentials(grants.ClientCredentialsGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        class Password(grants.ResourceOwnerPasswordCredentialsGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            def authenticate_user(self, username: str, password: str) -> str | None:
                return username if USERS.get(username) == password else None

        class Refresh(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            @property
            def INCLUDE_NEW_REFRESH_TOKEN(self) -> bool:  # type: ignore[override]
                return outer.control.rotate_refresh_tokens

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                outer.control.refresh_uses[refresh_token] += 1
                t = outer.refresh.get(refresh_token)
                if (t is None or t.revoked) and outer.control.echo_in_errors:
                    raise InvalidGrantError(f"refresh token {refresh_token} is revoked")
                return t if t and not t.revoked else None

            def authenticate_user(self, credential: Token) -> str | None:
                return credential.user

            def revoke_old_credential(self, credential: Token) -> None:
                if outer.control.rotate_refresh_tokens:  # a used refresh token is dead
                    credential.revoked = True

        class Device(DeviceCodeGrant):
            def query_device_credential(self, device_code: str) -> DeviceCredential | None:
                return outer.devices.get(device_code)

            def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
                return outer.device_grants.get(user_code)

            def should_slow_down(self, credential: DeviceCredential) -> bool:
                now = time.time()
                slow = now - credential.last_poll < outer.control.device_slow_down_within
                credential.last_poll = now
                return slow

        class DeviceEndpoint(DeviceAuthorizationEndpoint):
            CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
            EXPIRES_IN = 600
            INTERVAL = 5

            def get_verification_uri(self) -> str:
                return outer.url("/device")

            def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
                outer.devices[data["device_code"]] = DeviceCredential(
                    client_id, scope or "", data["device_code"], data["user_code"], time.time() + data["expires_in"])

        class TokenExchange(BaseGrant, TokenEndpointMixin):
            """RFC 8693: an access token of ours for a new one with the same user."""
            GRANT_TYPE = TOKEN_EXCHANGE
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def validate_token_request(self) -> None:
                client = self.authenticate_token_endpoint_client()
                data = self.request.payload.data
                if data.get("subject_token_type") != ACCESS_TOKEN_TYPE:
                    raise InvalidGrantError("unsupported subject_token_type")
                subject = outer.tokens.get(data.get("subject_token", ""))
                if subject is None or subject.revoked:
                    raise InvalidGrantError("unknown subject_token")
                self.request.client = client
                self.request.user = subject.user

            def create_token_response(self) -> Any:
                scope = self.request.payload.data.get("scope") or ""
                token = self.generate_token(user=self.request.user, scope=scope, include_refresh_token=False)
                token["issued_token_type"] = ACCESS_TOKEN_TYPE
                self.save_token(token)
                return 200, token, self.TOKEN_RESPONSE_HEADER

        class Revocation(RevocationEndpoint):
            CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

            def query_token(self, token_string: str, hint: str | None) -> Token | None:
                return outer.refresh.get(token_string) or outer.tokens.get(token_string)

            def revoke_token(self, token: Token, req: Any) -> None:
                token.revoked = True
                outer.control.revoked.append(req.form.get("token_type_hint") or "")

        class Issuer(IssuerParameter):
            def get_issuer(self) -> str:
                return outer.control.callback_issuer or outer.issuer

        class ClientAssertion(JWTBearerClientAssertion):
            """private_key_jwt / client_secret_jwt: aud must be the token endpoint (whatever the
            endpoint called), each jti is taken once; the claims are kept for tests to read."""

            def __init__(self, method: str) -> None:
                super().__init__()
                self.CLIENT_AUTH_METHOD = method

            def __call__(self, query_client: Any, request: Any) -> Any:
                assertion = request.form.get("client_assertion")
                if not assertion:
                    return None
                header, claims = self.extract_assertion(assertion)
                client = query_client(str(claims.get("sub")))
                if client is not None and client.auth_method != self.CLIENT_AUTH_METHOD:
                    return None  # another method's client: its assertion (and jti) are that verifier's
                client = super().__call__(query_client, request)
                outer.control.client_assertions.append({"header": header, "claims": claims})
                return client

            def get_audiences(self) -> list[str]:
                return [outer.url("/token")]

            def process_assertion_claims(self, assertion: str, key: Any) -> Any:
                try:  # joserfc's default list leaves out PS256, which Entra ID asks for
                    claims = jwt.decode(assertion, key, algorithms=ASSERTION_ALGS).claims
                except JoseError as e:
                    raise InvalidClientError(description=e.description) from e
                self.verify_claims(claims)
                return claims

            def validate_jti(self, claims: Any, jti: str) -> bool:
                with outer.lock:
                    if jti in outer.jtis:
                        return False
                    outer.jtis.add(jti)
                    return True

            def resolve_client_public_key(self, client: Client) -> Any:
                if self.CLIENT_AUTH_METHOD == "client_secret_jwt":
                    return OctKey.import_key(client.client_secret or "")
                return KeySet.import_key_set(client.jwks or {"keys": []})

        for endpoint in (AuthorizationCode, ClientCredentials, Password, Refresh, Device, TokenExchange):
            endpoint.TOKEN_ENDPOINT_AUTH_METHODS = [*endpoint.TOKEN_ENDPOINT_AUTH_METHODS, *JWT_AUTH]
        for endpoint in (Revocation, DeviceEndpoint):
            endpoint.CLIENT_AUTH_METHODS = [*endpoint.CLIENT_AUTH_METHODS, *JWT_AUTH]
        s = self.server
        for method in JWT_AUTH:
            s.register_client_auth_method(method, ClientAssertion(method))
        s.register_grant(AuthorizationCode, [CodeChallenge(required=True), OIDC(require_nonce=False)])
        s.register_grant(ClientCredentials)
        s.register_grant(Password)
        s.register_grant(Refresh)
        s.register_grant(Device)
        s.register_grant(TokenExchange)
        s.register_endpoint(Revocation)
        s.register_endpoint(DeviceEndpoint)
        s.register_extension(Issuer())

    # -- HTTP ----------------------------------------------------------------------------
    def _routes(self) -> None:
        app, outer = self.app, self

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify({
                "issuer": outer.issuer,
                "authorization_endpoint": outer.url("/authorize"),
                "token_endpoint": outer.url("/token"),
                "revocation_endpoint": outer.url("/revoke"),
                "userinfo_endpoint": outer.url("/userinfo"),
                "device_authorization_endpoint": outer.url("/device_authorization"),
                "jwks_uri": outer.url("/jwks"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password",
                                          DeviceCodeGrant.GRANT_TYPE, TOKEN_EXCHANGE],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "authorization_response_iss_parameter_supported": True,
            })

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify({"keys": [outer.key.as_dict(private=False)]})

        @app.get("/authorize")
        def authorize() -> Any:
            user = None if outer.control.deny else outer.control.user
            grant = outer.server.get_consent_grant(end_user=user)
            return outer.server.create_authorization_response(grant=grant, grant_user=user)

        @app.post("/token")
        def token() -> Any:
            with outer.lock:
                outer.control.token_requests[request.form.get("grant_type", "")] += 1
                outer.control.token_scopes.append(request.form.get("scope"))
                fail = outer.control.fail_token_requests > 0
                if fail:
                    outer.control.fail_token_requests -= 1
                gate = outer.control.token_gate
            if gate is not None:
                gate.wait(30)
            if outer.control.token_delay:
                time.sleep(outer.control.token_delay)
            if outer.control.redirect_token_to:
                return "", 307, {"Location": outer.control.redirect_token_to}
            if outer.control.echo_request:
                return jsonify({"error": outer.control.echo_request, "error_description": outer.echo()}), 400
            if fail:
                headers = {"Retry-After": outer.control.retry_after} if outer.control.retry_after else {}
                return jsonify({"error": "temporarily_unavailable"}), 503, headers
            with outer.lock:
                return outer.shaped(outer.server.create_token_response())

        @app.post("/revoke")
        def revoke() -> Any:
            with outer.lock:
                return outer.server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)

        @app.post("/device_authorization")
        def device_authorization() -> Any:
            with outer.lock:
                return outer.server.create_endpoint_response(DeviceAuthorizationEndpoint.ENDPOINT_NAME)

        @app.get("/userinfo")
        def userinfo() -> Any:
            outer.control.userinfo_requests += 1
            auth = request.headers.get("Authorization", "")
            t = outer.tokens.get(auth.removeprefix("Bearer "))
            if t is None or t.revoked or t.is_expired():
                return jsonify({"error": "invalid_token"}), 401
            return jsonify({"sub": f"sub-{t.user}", "email": f"{t.user}@example.com"})

    def echo(self) -> str:
        """What the current request carried, as a careless provider repeats it: the form body
        (form-encoded), its values as JSON, base64 of each value ("b64") or of the whole body
        ("b64body"), and the Authorization header's credentials (base64 of "client_id:client_secret")."""
        form = list(request.form.items(multi=True))
        parts = {"form": f"form {urllib.parse.urlencode(form)}",
                 "json": f"json {json.dumps(dict(form))}",
                 "b64": f"b64 {' '.join(base64.b64encode(v.encode()).decode() for _, v in form)}",
                 "b64body": f"b64body {base64.b64encode(urllib.parse.urlencode(form).encode()).decode()}",
                 "basic": f"basic {request.headers.get('Authorization', '').partition(' ')[2]}"}
        return "; ".join(parts[f] for f in self.control.echo_forms)

    # -- what a user does in a browser or on a device ------------------------------------
    def approve_device(self, user_code: str, user: str = "alice", approved: bool = True) -> None:
        self.device_grants[user_code] = (user, approved)

    def expire_device(self, user_code: str) -> None:
        for d in self.devices.values():
            if d.user_code == user_code:
                d.expires_at = 0.0

    def mint(self, client_id: str, user: str, lifetime: int, scope: str = "openid email") -> dict[str, Any]:
        """Tokens as if issued to `user` by an authorization code exchange (for tests that need many)."""
        token = {"token_type": "Bearer", "access_token": "at-" + secrets.token_urlsafe(24),
                 "refresh_token": "rt-" + secrets.token_urlsafe(24), "expires_in": lifetime, "scope": scope}
        with self.lock:
            t = Token(client_id, user, scope, token["access_token"], token["refresh_token"], time.time(), lifetime)
            self.tokens[t.access_token] = t
            self.refresh[token["refresh_token"]] = t
        return token

    def id_token(self, client_id: str, user: str) -> str:
        """An ID token as the code grant's (RS256 under k1), for the grants of control.id_token_grants."""
        now = int(time.time())
        token = jwt.encode({"alg": "RS256", "kid": "k1"}, {"iss": self.issuer, "sub": f"sub-{user}", "aud": [client_id],
                                                           "iat": now, "exp": now + 3600}, self.key)
        if self.control.tamper_id_token:
            head, body, sig = token.split(".")
            token = ".".join([head, body, ("A" if sig[0] != "A" else "B") + sig[1:]])
        return token

    def shaped(self, resp: Any) -> Any:
        """A successful token response as the switches shape it (tokens issued stay valid)."""
        c = self.control
        if resp.status_code != 200 or not (c.response_style or c.id_token_grants):
            return resp
        body = resp.get_json()
        issued = self.tokens.get(body.get("access_token", ""))
        if request.form.get("grant_type") in c.id_token_grants and issued and "openid" in issued.scope.split():
            body["id_token"] = self.id_token(issued.client_id, issued.user or "")
        if c.response_style == "slack":  # oauth.v2.access with token rotation
            body = {"ok": True, "access_token": body["access_token"], "token_type": "bot",
                    "scope": ",".join(body.get("scope", "").replace(",", " ").split()),
                    "bot_user_id": "U0BOT", "app_id": "A0APP", "team": {"id": "T0TEAM", "name": "Acme"},
                    "enterprise": None, "is_enterprise_install": False,
                    "authed_user": {"id": "U0USER", "scope": "chat:write,channels:history", "token_type": "user",
                                    "access_token": "xoxp-" + secrets.token_urlsafe(24)},
                    "incoming_webhook": {"channel": "#general", "channel_id": "C0GENERAL",
                                         "url": "https://hooks.slack.example/services/T0TEAM/B0/"
                                                + secrets.token_urlsafe(18)},
                    **{k: body[k] for k in ("refresh_token", "expires_in") if k in body}}
        elif c.response_style == "salesforce":  # no expires_in; the identity URL and its HMAC
            body.pop("expires_in", None)
            body.update(instance_url="https://acme.my.salesforce.example",
                        id="https://login.salesforce.example/id/00D0ACME/0050USER",
                        issued_at=str(int(time.time() * 1000)), signature=secrets.token_urlsafe(32))
        c.last_token_response = body
        resp.set_data(json.dumps(body))
        return resp

    def token_count(self, grant_type: str | None = None) -> int:
        c = self.control.token_requests
        return sum(c.values()) if grant_type is None else c[grant_type]
