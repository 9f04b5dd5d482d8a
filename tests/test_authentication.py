"""JWTAuthentication and HasScope, through the example project's ``GET /api/me``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from django_tokens import jws, keystore, sessions
from django_tokens.authentication import HasScope, JWTAuthentication
from django_tokens.models import Session
from django_tokens.tokens import issue_access_token

ISSUER = settings.DJANGO_TOKENS["ISSUER"]
AUDIENCE = "django-tokens"


# -- helpers -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def split(token: str) -> tuple[str, str, str]:
    header, payload, signature = token.split(".")
    return header, payload, signature


def decode_segment(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def me(client: Client, token: str, **query: str) -> Any:
    return client.get("/api/me", query, HTTP_AUTHORIZATION=f"Bearer {token}")


def obtain(client: Client, credentials: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/token", credentials, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def access_claims(user: Any, **changes: Any) -> dict[str, Any]:
    """Claims of a valid access token for ``user``; a change to None drops that claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "preferred_username": user.get_username(),
        "email": user.email,
        "iss": ISSUER,
        "sub": str(user.pk),
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "sid": str(uuid.uuid4()),
        "scope": "profile email",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def sign_with(key: keystore.LoadedKey, claims: dict[str, Any], **headers: Any) -> str:
    """Sign with the keystore's own key; header entries given here are added or replaced."""
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=headers.pop("alg", key.algorithm),
        headers={"kid": key.kid, "typ": "at+jwt", **headers},
    )


def sign_raw(key: keystore.LoadedKey, header: dict[str, Any], payload: bytes) -> str:
    """Sign any header and payload bytes, including what PyJWT's encoder would refuse."""
    signing_input = f"{segment(header)}.{b64url(payload)}"
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    return f"{signing_input}.{b64url(algorithm.sign(signing_input.encode(), key.private_key))}"


def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.fixture
def tokens(client: Client, user: Any, password_credentials: dict[str, str]) -> dict[str, Any]:
    """Tokens from ``POST /api/token``; the keystore of this process is loaded afterwards."""
    return obtain(client, password_credentials)


@pytest.fixture
def active_key(tokens: dict[str, Any]) -> keystore.LoadedKey:
    key = keystore.signing_key()
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == key.kid
    return key


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="bob", password="bob-password", email="bob@example.com"
    )


# -- accepted tokens -----------------------------------------------------------------------


def test_verifying_an_access_token_costs_no_database_query(
    client: Client, user: Any, tokens: dict[str, Any], django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        response = me(client, tokens["access_token"])

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert body["scope"] == ["email", "profile"]


def test_a_field_the_token_lacks_loads_the_user_row_once(
    client: Client, user: Any, tokens: dict[str, Any], django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1) as captured:
        response = me(client, tokens["access_token"], fields="full")

    assert response.status_code == 200, response.content
    assert response.json()["date_joined"] == user.date_joined.isoformat()
    assert "auth_user" in captured.captured_queries[0]["sql"]


def test_request_user_pk_has_the_user_models_pk_type(
    client: Client, user: Any, tokens: dict[str, Any]
) -> None:
    seen: list[Any] = []

    class WhoAmI(APIView):
        authentication_classes = [JWTAuthentication]
        permission_classes: list[Any] = []

        def get(self, request: Request) -> Response:
            seen.append(request.user)
            return Response({})

    request = APIRequestFactory().get(
        "/whoami", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}"
    )
    assert WhoAmI.as_view()(request).status_code == 200

    assert type(seen[0].pk) is type(user.pk)
    assert seen[0].pk == seen[0].id == user.pk
    assert me(client, tokens["access_token"]).json()["id"] == user.pk


def test_a_token_signed_by_the_active_key_with_valid_claims_is_accepted(
    client: Client, user: Any, active_key: keystore.LoadedKey
) -> None:
    """The baseline for the forged tokens below: only what each one changes is wrong."""
    token = sign_with(active_key, access_claims(user))

    assert me(client, token).status_code == 200


# -- refused tokens ------------------------------------------------------------------------

Forge = Callable[[Any, keystore.LoadedKey, str], str]


def _alg_none(casing: str) -> Forge:
    def forge(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
        header = {"alg": casing, "typ": "at+jwt", "kid": key.kid}
        return f"{segment(header)}.{segment(access_claims(user))}."

    return forge


def _hmac_with_public_pem(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    signing_input = f"{segment(header)}.{segment(access_claims(user))}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _with_kid(kid: Any) -> Forge:
    def forge(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
        header = {"alg": key.algorithm, "typ": "at+jwt", "kid": kid}
        return sign_raw(key, header, json.dumps(access_claims(user)).encode())

    return forge


def _without_kid(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    return jwt.encode(
        access_claims(user), key.private_key, algorithm=key.algorithm, headers={"typ": "at+jwt"}
    )


def _tampered_payload(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    header, payload, signature = split(genuine)
    claims = decode_segment(payload)
    claims["scope"] = "profile email admin"
    return f"{header}.{segment(claims)}.{signature}"


def _tampered_signature(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    header, payload, signature = split(genuine)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def _oversized(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    token = sign_with(key, access_claims(user, padding="x" * 8200))
    assert len(token) > jws.MAX_TOKEN_LENGTH
    return token


def _non_utf8_header(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    _, payload, signature = split(genuine)
    header = b'{"alg":"RS256","typ":"at+jwt","kid":"\xff\xfe"}'
    return f"{b64url(header)}.{payload}.{signature}"


def _signed_non_utf8_payload(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    header = {"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid}
    return sign_raw(key, header, b"\xff\xfe\xfd{}")


def _constant(token: str) -> Forge:
    return lambda user, key, genuine: token


def _claims(**changes: Any) -> Forge:
    return lambda user, key, genuine: sign_with(key, access_claims(user, **changes))


def _header(**changes: Any) -> Forge:
    return lambda user, key, genuine: sign_with(key, access_claims(user), **changes)


def _id_token_look_alike(user: Any, key: keystore.LoadedKey, genuine: str) -> str:
    claims = access_claims(user, nonce="n-0S6_WzA2Mj", email_verified=True, azp="client")
    return jws.sign(claims, key.private_key, key.algorithm, kid=key.kid)


REFUSED: dict[str, Forge] = {
    "wrong audience": _claims(aud="another-api"),
    "audience list without ours": _claims(aud=["another-api", "third-api"]),
    "wrong issuer": _claims(iss="https://issuer.example"),
    "issued in the future": _claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200),
    "not yet valid": _claims(nbf=int(time.time()) + 3600),
    "without exp": _claims(exp=None),
    "without sub": _claims(sub=None),
    "without jti": _claims(jti=None),
    "id_token look-alike (typ JWT)": _id_token_look_alike,
    "typ jwt lowercase": _header(typ="jwt"),
    "typ absent": _header(typ=None),
    "typ of a refresh token": _header(typ="refresh+jwt"),
    "alg none": _alg_none("none"),
    "alg None": _alg_none("None"),
    "alg NONE": _alg_none("NONE"),
    "alg nOnE": _alg_none("nOnE"),
    "HS256 keyed with the public key PEM": _hmac_with_public_pem,
    "another alg with the right key": _header(alg="RS512"),
    "no kid": _without_kid,
    "integer kid": _with_kid(123),
    "null kid": _with_kid(None),
    "list kid": _with_kid(["kid"]),
    "object kid": _with_kid({"kid": "x"}),
    "empty kid": _with_kid(""),
    "overlong kid": _with_kid("k" * 129),
    "tampered payload": _tampered_payload,
    "tampered signature": _tampered_signature,
    "signature stripped": lambda user, key, genuine: genuine.rsplit(".", 1)[0] + ".",
    "garbage": _constant("garbage"),
    "three garbage segments": _constant("a.b.c"),
    "empty segments": _constant(".."),
    "empty JSON objects": _constant("e30.e30.e30"),
    "oversized (> 8 KB) but validly signed": _oversized,
    "non-UTF-8 header segment": _non_utf8_header,
    "validly signed non-UTF-8 payload": _signed_non_utf8_payload,
    "non-ASCII characters in the token": _constant("ey\u00e9.ey\u00ff.\u00e0"),
}


@pytest.mark.parametrize("forge", REFUSED.values(), ids=REFUSED.keys())
def test_invalid_token_is_refused_without_a_database_query(
    client: Client,
    user: Any,
    tokens: dict[str, Any],
    active_key: keystore.LoadedKey,
    forge: Forge,
    django_assert_num_queries: Any,
) -> None:
    token = forge(user, active_key, tokens["access_token"])

    with django_assert_num_queries(0):
        response = me(client, token)

    assert_refused(response)


def test_expired_token_is_refused_once_the_leeway_has_passed(
    client: Client, tokens: dict[str, Any], django_assert_num_queries: Any
) -> None:
    token = tokens["access_token"]
    expires = datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"])
    leeway = timedelta(seconds=30)

    with time_machine.travel(expires.astimezone(UTC) + leeway - timedelta(seconds=1), tick=False):
        assert me(client, token).status_code == 200
    with (
        time_machine.travel(expires.astimezone(UTC) + leeway + timedelta(seconds=1), tick=False),
        django_assert_num_queries(0),
    ):
        response = me(client, token)

    assert_refused(response)


def test_made_up_kids_are_refused_and_send_the_process_to_the_database_at_most_once(
    client: Client, user: Any, tokens: dict[str, Any]
) -> None:
    attacker = attacker_key()
    made_up = [
        "unknown-kid",
        "../../../../etc/passwd",
        "/dev/null",
        "file:///etc/passwd",
        "http://127.0.0.1:1/jwks.json",
        "kid\u0000",
        "*",
    ]

    forged = [
        jwt.encode(access_claims(user), attacker, "RS256", headers={"kid": kid, "typ": "at+jwt"})
        for kid in made_up
    ]

    with CaptureQueriesContext(connection) as captured:
        responses = [me(client, token) for token in forged]

    for response in responses:
        assert_refused(response)
        assert response.json()["detail"] == "Unknown signing key."
    # The first unknown kid reloads the keystore (a key another process just added would be
    # found); the rest of the burst is answered from memory.
    assert len(captured.captured_queries) == 1, captured.captured_queries


class _RecordingHandler(BaseHTTPRequestHandler):
    """Serves a JWKS with the attacker's key at every path, and records every request."""

    jwks: bytes = b""
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.jwks)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def attacker_server() -> Iterator[tuple[str, rsa.RSAPrivateKey, dict[str, Any], list[str]]]:
    key = attacker_key()
    public_jwk = jws.public_jwk(key.public_key(), "RS256")
    kid = jws.jwk_thumbprint(public_jwk)
    handler = type(
        "Handler",
        (_RecordingHandler,),
        {
            "jwks": json.dumps({"keys": [{**public_jwk, "kid": kid, "alg": "RS256"}]}).encode(),
            "requests": [],
        },
    )
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        yield url, key, {**public_jwk, "kid": kid}, handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_jku_x5u_and_jwk_headers_are_ignored(
    client: Client,
    user: Any,
    active_key: keystore.LoadedKey,
    attacker_server: tuple[str, rsa.RSAPrivateKey, dict[str, Any], list[str]],
) -> None:
    url, key, public_jwk, fetched = attacker_server
    pointing_headers = {
        "typ": "at+jwt",
        "jku": f"{url}/jwks.json",
        "x5u": f"{url}/cert.pem",
        "jwk": public_jwk,
    }
    own_kid = jwt.encode(
        access_claims(user), key, "RS256", headers={**pointing_headers, "kid": public_jwk["kid"]}
    )
    borrowed_kid = jwt.encode(
        access_claims(user), key, "RS256", headers={**pointing_headers, "kid": active_key.kid}
    )

    assert_refused(me(client, own_kid))
    assert_refused(me(client, borrowed_kid))
    assert fetched == []


# -- revocation ----------------------------------------------------------------------------


def _session_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sid"]


def test_revoked_session_is_refused_at_once_while_another_session_works(
    client: Client,
    user: Any,
    password_credentials: dict[str, str],
    django_assert_num_queries: Any,
) -> None:
    revoked = obtain(client, password_credentials)["access_token"]
    other = obtain(client, password_credentials)["access_token"]
    assert me(client, revoked).status_code == 200

    assert sessions.revoke_session(_session_of(revoked))

    with django_assert_num_queries(0):
        response = me(client, revoked)
    assert_refused(response)
    assert me(client, other).status_code == 200
    assert Session.objects.get(pk=_session_of(revoked)).revoked_at is not None


def test_revoking_a_user_refuses_every_one_of_their_tokens_only(
    client: Client, user: Any, bob: Any, password_credentials: dict[str, str]
) -> None:
    first = obtain(client, password_credentials)["access_token"]
    second = obtain(client, password_credentials)["access_token"]
    bobs = obtain(client, {"username": "bob", "password": "bob-password"})["access_token"]

    assert sessions.revoke_user(user) == 2

    assert_refused(me(client, first))
    assert_refused(me(client, second))
    assert me(client, bobs).status_code == 200


# -- scopes --------------------------------------------------------------------------------


def _token_with_scopes(user: Any, scopes: list[str]) -> str:
    session = sessions.start(user, service=Session.Service.PASSWORD, scopes=scopes).session
    return issue_access_token(
        user, session_id=str(session.pk), scopes=scopes, service="password", issuer=ISSUER
    ).token


def test_token_without_the_required_scope_is_forbidden(client: Client, user: Any) -> None:
    response = me(client, _token_with_scopes(user, ["email"]))

    assert response.status_code == 403, response.content
    assert me(client, _token_with_scopes(user, ["profile"])).status_code == 200


def test_has_scope_without_required_scopes_is_a_configuration_error(
    user: Any, tokens: dict[str, Any]
) -> None:
    class Unscoped(APIView):
        authentication_classes = [JWTAuthentication]
        permission_classes = [HasScope]

        def get(self, request: Request) -> Response:
            return Response({})

    request = APIRequestFactory().get(
        "/unscoped", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}"
    )

    with pytest.raises(ImproperlyConfigured, match="required_scopes"):
        Unscoped.as_view()(request)


# -- an unreachable cache ------------------------------------------------------------------


def test_verification_keeps_working_when_the_revocation_cache_is_unreachable(
    client: Client, user: Any, tokens: dict[str, Any], password_credentials: dict[str, str]
) -> None:
    assert me(client, tokens["access_token"]).status_code == 200
    unreachable = {
        "BACKEND": "django_tokens.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }

    with override_settings(
        CACHES={**settings.CACHES, "unreachable": unreachable},
        DJANGO_TOKENS={**settings.DJANGO_TOKENS, "CACHE_ALIAS": "unreachable"},
    ):
        with pytest.raises(Exception, match=r"(?i)connect"):
            caches["unreachable"].get("probe")
        response = me(client, tokens["access_token"])
        login = client.post("/api/token", password_credentials, content_type="application/json")

    assert response.status_code == 200, response.content
    assert login.status_code == 503
    assert login.json()["error"] == "temporarily_unavailable"


@pytest.mark.django_db
def test_is_staff_comes_from_a_claim_without_loading_the_user(
    django_assert_num_queries, django_user_model
) -> None:
    from django_tokens.authentication import TokenUser

    row = django_user_model.objects.create_user(username="carol", password="x-unused-1")
    with django_assert_num_queries(0):
        claimed = TokenUser({"sub": str(row.pk), "is_staff": True, "is_superuser": False})
        assert claimed.is_staff is True
        assert claimed.is_superuser is False
    with django_assert_num_queries(1):
        assert TokenUser({"sub": str(row.pk)}).is_staff is False
