"""``POST /auth/api-key``, ``/auth/login`` and ``/auth/refresh`` over HTTP (seed 000, SPEC sections
2, 4 and 6).

PyJWT plays the client: assertions are signed with an API key's shared secret exactly as a client
script signs them, and the tokens that come back are verified against the served JWKS. Everything
runs against the real database and the configured cache; the failure cases use a Redis server
that cannot be reached.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jwt
import pytest
import requests
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from django_tokens import api_keys, jws, keystore
from django_tokens.api_keys import IssuedSecret
from django_tokens.models import ApiKey, RefreshToken, Session, UserMetadata
from tests.shapes import KEYCLOAK_KEYS

pytestmark = pytest.mark.django_db

API_KEY_PATHS = ["/auth/api-key", "/auth/api-key/"]
LOGIN_PATHS = ["/auth/login", "/auth/login/"]
REFRESH_PATHS = ["/auth/refresh", "/auth/refresh/"]
JWKS_PATH = "/.well-known/jwks.json"
ISSUER = settings.DJANGO_TOKENS["ISSUER"]
AUDIENCE = "django-tokens"
DEFAULT_SCOPE = "openid email app_metadata user_metadata profile"
CREDENTIALS_REFUSED = {"error": "invalid_credentials", "message": "Missing or invalid credentials"}
REFRESH_REFUSED = {
    "error": "invalid_grant",
    "message": "Wrong or expired refresh token, or user/api-key removed",
}
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
ID_TOKEN_SCOPE_CLAIMS = {
    "email": {"email", "email_verified"},
    "profile": {"name", "preferred_username"},
    "app_metadata": {"app_metadata"},
    "user_metadata": {"user_metadata"},
}
#: No keep-alive: the live server's request threads close their database connections as soon
#: as each response is sent.
CLOSE = {"Connection": "close"}
THROTTLE_WINDOW = 60
#: A moment that starts a throttle window, so a test never straddles two windows by chance.
WINDOW_START = datetime(2031, 3, 4, 5, 6, 0, tzinfo=UTC)


# -- configuration -------------------------------------------------------------------------


def tokens_config(**overrides: Any) -> override_settings:
    """``override_settings`` for some ``DJANGO_TOKENS`` keys, the rest kept from the settings."""
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


def unreachable_cache(**overrides: Any) -> override_settings:
    """A real Redis client pointed at a port where nothing listens, used as the shared cache."""
    caches = {
        **settings.CACHES,
        "unreachable": {
            "BACKEND": "django_tokens.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    return override_settings(
        CACHES=caches,
        DJANGO_TOKENS={**settings.DJANGO_TOKENS, "CACHE_ALIAS": "unreachable", **overrides},
    )


# -- the client's side: assertions --------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def assertion_claims(
    *, issued_at: float | None = None, lifetime: int = 60, **changes: Any
) -> dict[str, Any]:
    """``iat``, ``exp`` and a fresh ``jti``; a change to None drops that claim."""
    iat = int(time.time() if issued_at is None else issued_at)
    claims = {"iat": iat, "exp": iat + lifetime, "jti": uuid.uuid4().hex, **changes}
    return {name: value for name, value in claims.items() if value is not None}


def sign_assertion(
    issued: IssuedSecret,
    *,
    algorithm: str = "HS256",
    secret: str | None = None,
    kid: str | None = "",
    **claims: Any,
) -> str:
    """An assertion as a client script signs it: ``kid`` defaults to the key's id, None omits it."""
    key_id = issued.api_key.key_id if kid == "" else kid
    headers = {"kid": key_id} if key_id is not None else None
    return jwt.encode(
        assertion_claims(**claims),
        issued.secret if secret is None else secret,
        algorithm=algorithm,
        headers=headers,
    )


def unsigned_assertion(issued: IssuedSecret, alg: str) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": issued.api_key.key_id}
    return f"{segment(header)}.{segment(assertion_claims())}."


def with_payload(token: str, claims: dict[str, Any]) -> str:
    """``token`` with its payload replaced and its signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{segment(claims)}.{signature}"


def hmac_assertion(issued: IssuedSecret, header: dict[str, Any]) -> str:
    """Any header, HMAC-SHA256-signed with the key's real secret."""
    signing_input = f"{segment(header)}.{segment(assertion_claims())}"
    mac = hmac.new(issued.secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


@cache
def foreign_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- requests ------------------------------------------------------------------------------


def exchange(client: Client, token: str, path: str = "/auth/api-key", **extra: Any) -> Any:
    return client.post(path, headers=bearer(token), **extra)


def post_json(client: Client, path: str, payload: Any, **extra: Any) -> Any:
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(path, body, content_type="application/json", **extra)


def login(client: Client, email: str, password: str, **extra: Any) -> Any:
    return post_json(client, "/auth/login", {"email": email, "password": password}, **extra)


def refresh(client: Client, refresh_token: str, path: str = "/auth/refresh") -> Any:
    return post_json(client, path, {"refresh_token": refresh_token})


def get_me(client: Client, access_token: str) -> Any:
    return client.get("/api/me", headers=bearer(access_token))


# -- checks --------------------------------------------------------------------------------


def assert_keycloak_response(
    response: Any, scope: str = DEFAULT_SCOPE, expires_in: int = 86400
) -> dict[str, Any]:
    """Status 200, ``no-store``, and exactly the nine keys of seed 000 with their fixed values.

    ``expires_in`` is 86400 unless the key expires sooner: no token outlives its key."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == KEYCLOAK_KEYS
    assert body["token_type"] == "bearer"
    assert body["not-before-policy"] == 0
    assert body["expires_in"] == expires_in
    assert type(body["refresh_expires_in"]) is int
    assert body["scope"] == scope
    for name in ("access_token", "refresh_token", "id_token"):
        assert JWT_SHAPE.fullmatch(body[name]), name
    session_state = uuid.UUID(body["session_state"])
    assert session_state.version == 4
    assert str(session_state) == body["session_state"]
    return body


def assert_refusal(response: Any, expected: dict[str, str], status: int = 401) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == expected


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert body["message"]


def verified(client: Client, token: str, *, audience: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token's header and claims, its signature checked with the JWKS this server serves."""
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(client.get(JWKS_PATH).json())[header["kid"]]
    claims = jwt.decode(
        token, key.key, algorithms=[key.algorithm_name], audience=audience, issuer=ISSUER
    )
    return header, claims


def unverified(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def api_key(user: Any) -> IssuedSecret:
    return api_keys.issue(user, name="ci")


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(WINDOW_START + timedelta(seconds=10), tick=False) as traveller:
        yield traveller


@pytest.fixture
def metadata(user: Any) -> UserMetadata:
    user.first_name, user.last_name = "Alice", "Liddell"
    user.save()
    return UserMetadata.objects.create(
        user=user,
        email_verified=True,
        app_metadata={"plan": "gold", "roles": ["admin", "billing"]},
        user_metadata={"theme": "dark", "locale": "en-GB"},
    )


def obtain(client: Client, issued: IssuedSecret) -> dict[str, Any]:
    expires_at = issued.api_key.expires_at
    seconds_left = (expires_at - timezone.now()).total_seconds() if expires_at else 86400
    return assert_keycloak_response(
        exchange(client, sign_assertion(issued)),
        scope=issued.api_key.scope,
        expires_in=int(min(86400, seconds_left)),
    )


# -- POST /auth/api-key: accepted ------------------------------------------------------------


@pytest.mark.parametrize("path", API_KEY_PATHS)
def test_assertion_returns_exactly_the_nine_keys_with_sid_equal_to_session_state(
    client: Client, user: Any, api_key: IssuedSecret, path: str
) -> None:
    body = assert_keycloak_response(exchange(client, sign_assertion(api_key), path))

    assert body["refresh_expires_in"] == 86400
    access_header, access = verified(client, body["access_token"], audience=AUDIENCE)
    _, refresh_claims = verified(client, body["refresh_token"], audience=ISSUER)
    _, id_claims = verified(client, body["id_token"], audience=api_key.api_key.key_id)
    assert access_header["typ"] == "at+jwt"
    assert access["sid"] == refresh_claims["sid"] == id_claims["sid"] == body["session_state"]
    assert access["sub"] == refresh_claims["sub"] == id_claims["sub"] == str(user.pk)
    assert access["exp"] - access["iat"] == 86400
    assert access["scope"] == DEFAULT_SCOPE
    assert refresh_claims["exp"] - refresh_claims["iat"] == 86400
    session = Session.objects.get(pk=body["session_state"])
    assert session.api_key_id == api_key.api_key.pk
    assert session.user_id == user.pk


@pytest.mark.django_db(transaction=True)
def test_issued_tokens_verify_with_pyjwt_against_the_served_jwks(
    live_server: Any, user: Any, api_key: IssuedSecret
) -> None:
    response = requests.post(
        f"{live_server.url}/auth/api-key",
        headers={**CLOSE, **bearer(sign_assertion(api_key))},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == KEYCLOAK_KEYS
    jwks = jwt.PyJWKClient(f"{live_server.url}{JWKS_PATH}", headers=CLOSE)

    def decode(token: str, audience: str) -> dict[str, Any]:
        key = jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "sid"]},
        )

    key_id = api_key.api_key.key_id
    access = decode(body["access_token"], AUDIENCE)
    refresh_claims = decode(body["refresh_token"], ISSUER)
    id_claims = decode(body["id_token"], key_id)

    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert access["sid"] == refresh_claims["sid"] == id_claims["sid"] == body["session_state"]
    assert access["azp"] == id_claims["azp"] == key_id
    assert refresh_claims["typ"] == "Refresh"
    assert body["expires_in"] == access["exp"] - access["iat"] == 86400
    me = requests.get(
        f"{live_server.url}/api/me", headers={**CLOSE, **bearer(body["access_token"])}, timeout=10
    )
    assert me.status_code == 200, me.text
    assert me.json()["session"] == body["session_state"]
    assert me.json()["username"] == "alice"


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_assertions_are_accepted_and_the_issued_secret_is_long_enough_for_them(
    client: Client, user: Any, api_key: IssuedSecret, algorithm: str
) -> None:
    with warnings.catch_warnings():
        # RFC 7518 §3.2: the key must be at least as long as the hash output.
        warnings.simplefilter("error", jwt.InsecureKeyLengthWarning)
        token = sign_assertion(api_key, algorithm=algorithm)
        response = exchange(client, token)

    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert_keycloak_response(response)


def test_key_id_is_read_from_iss_when_kid_is_absent(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    token = sign_assertion(api_key, kid=None, iss=api_key.api_key.key_id)
    assert "kid" not in jwt.get_unverified_header(token)

    body = assert_keycloak_response(exchange(client, token))

    assert Session.objects.get(pk=body["session_state"]).api_key_id == api_key.api_key.pk


def test_scope_is_the_keys_scopes(client: Client, user: Any) -> None:
    issued = api_keys.issue(user, name="narrow", scopes=["openid", "profile"])

    body = assert_keycloak_response(
        exchange(client, sign_assertion(issued)), scope="openid profile"
    )

    _, access = verified(client, body["access_token"], audience=AUDIENCE)
    assert access["scope"] == "openid profile"
    assert get_me(client, body["access_token"]).json()["scope"] == ["openid", "profile"]


def test_access_token_from_an_assertion_authenticates_at_api_me(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    body = obtain(client, api_key)

    response = get_me(client, body["access_token"])

    assert response.status_code == 200, response.content
    assert response.json()["id"] == user.pk
    assert response.json()["session"] == body["session_state"]
    assert ApiKey.objects.get(pk=api_key.api_key.pk).last_used_at is not None


def test_each_assertion_opens_its_own_session(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    first = obtain(client, api_key)
    second = obtain(client, api_key)

    assert first["session_state"] != second["session_state"]
    assert Session.objects.filter(api_key=api_key.api_key).count() == 2


# -- POST /auth/api-key: refused -------------------------------------------------------------

RequestHeaders = Callable[[IssuedSecret], dict[str, str]]

REFUSED_ASSERTIONS: dict[str, RequestHeaders] = {
    "no-authorization-header": lambda key: {},
    "basic-scheme": lambda key: {
        "Authorization": "Basic "
        + base64.b64encode(f"{key.api_key.key_id}:{key.secret}".encode()).decode()
    },
    "token-scheme": lambda key: {"Authorization": f"Token {sign_assertion(key)}"},
    "assertion-without-scheme": lambda key: {"Authorization": sign_assertion(key)},
    "empty-bearer": lambda key: {"Authorization": "Bearer "},
    "bare-bearer": lambda key: {"Authorization": "Bearer"},
    "garbage": lambda key: bearer("garbage"),
    "three-garbage-segments": lambda key: bearer("abc.def.ghi"),
    "alg-none": lambda key: bearer(unsigned_assertion(key, "none")),
    "alg-None": lambda key: bearer(unsigned_assertion(key, "None")),
    "alg-NONE": lambda key: bearer(unsigned_assertion(key, "NONE")),
    "alg-nOnE": lambda key: bearer(unsigned_assertion(key, "nOnE")),
    "alg-none-with-hmac-signature": lambda key: bearer(
        hmac_assertion(key, {"alg": "none", "typ": "JWT", "kid": key.api_key.key_id})
    ),
    "alg-hs256-lowercase": lambda key: bearer(
        hmac_assertion(key, {"alg": "hs256", "typ": "JWT", "kid": key.api_key.key_id})
    ),
    "alg-missing": lambda key: bearer(
        hmac_assertion(key, {"typ": "JWT", "kid": key.api_key.key_id})
    ),
    "rs256": lambda key: bearer(
        jwt.encode(
            assertion_claims(),
            foreign_rsa_key(),
            algorithm="RS256",
            headers={"kid": key.api_key.key_id},
        )
    ),
    "es256": lambda key: bearer(
        jwt.encode(
            assertion_claims(),
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": key.api_key.key_id},
        )
    ),
    "wrong-secret": lambda key: bearer(sign_assertion(key, secret="x" * 64)),
    "unknown-kid": lambda key: bearer(sign_assertion(key, kid="dtk_" + "0" * 24)),
    "kid-not-a-string": lambda key: bearer(
        hmac_assertion(key, {"alg": "HS256", "typ": "JWT", "kid": 12345})
    ),
    "kid-and-iss-missing": lambda key: bearer(sign_assertion(key, kid=None)),
    "iss-names-another-key": lambda key: bearer(
        sign_assertion(key, kid=None, iss="dtk_" + "0" * 24)
    ),
    "iat-missing": lambda key: bearer(sign_assertion(key, iat=None)),
    "exp-missing": lambda key: bearer(sign_assertion(key, exp=None)),
    "iat-not-a-number": lambda key: bearer(sign_assertion(key, iat="yesterday")),
    "exp-minus-iat-301": lambda key: bearer(sign_assertion(key, lifetime=301)),
    "exp-minus-iat-one-hour": lambda key: bearer(sign_assertion(key, lifetime=3600)),
    "jti-missing": lambda key: bearer(sign_assertion(key, jti=None)),
    "jti-empty": lambda key: bearer(sign_assertion(key, jti="")),
    "jti-a-number": lambda key: bearer(sign_assertion(key, jti=7)),
    "signature-stripped": lambda key: bearer(sign_assertion(key).rpartition(".")[0] + "."),
    "payload-tampered": lambda key: bearer(with_payload(sign_assertion(key), assertion_claims())),
}


@pytest.mark.parametrize("headers", REFUSED_ASSERTIONS.values(), ids=REFUSED_ASSERTIONS.keys())
def test_bad_assertion_is_401_with_the_seed_body(
    client: Client, user: Any, api_key: IssuedSecret, headers: RequestHeaders
) -> None:
    response = client.post("/auth/api-key", headers=headers(api_key))

    assert_refusal(response, CREDENTIALS_REFUSED)
    assert not Session.objects.exists()
    assert ApiKey.objects.get(pk=api_key.api_key.pk).last_used_at is None


def test_the_assertions_the_refused_ones_are_built_from_are_accepted(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    """Each refused assertion above differs from one of these in the one part its id names."""
    header = {"alg": "HS256", "typ": "JWT", "kid": api_key.api_key.key_id}

    assert_keycloak_response(exchange(client, hmac_assertion(api_key, header)))
    assert_keycloak_response(exchange(client, sign_assertion(api_key)))


def test_lifetime_of_exactly_the_maximum_is_accepted(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    assert_keycloak_response(exchange(client, sign_assertion(api_key, lifetime=300)))


def test_maximum_lifetime_follows_the_setting(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    with tokens_config(API_KEY_ASSERTION_MAX_AGE=60):
        accepted = exchange(client, sign_assertion(api_key, lifetime=60))
        refused = exchange(client, sign_assertion(api_key, lifetime=61))

    assert_keycloak_response(accepted)
    assert_refusal(refused, CREDENTIALS_REFUSED)


def test_expired_assertion_is_accepted_within_the_leeway_and_refused_beyond_it(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    within = sign_assertion(api_key, lifetime=60)
    beyond = sign_assertion(api_key, lifetime=60)

    frozen.shift(60 + 29)
    accepted = exchange(client, within)
    frozen.shift(2)
    refused = exchange(client, beyond)

    assert_keycloak_response(accepted)
    assert_refusal(refused, CREDENTIALS_REFUSED)


def test_assertion_issued_in_the_future_is_accepted_within_the_leeway_only(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    now = time.time()

    accepted = exchange(client, sign_assertion(api_key, issued_at=now + 29))
    refused = exchange(client, sign_assertion(api_key, issued_at=now + 31))

    assert_keycloak_response(accepted)
    assert_refusal(refused, CREDENTIALS_REFUSED)


def test_assertion_without_jti_is_accepted_when_the_setting_allows_it(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    token = sign_assertion(api_key, jti=None)

    with tokens_config(API_KEY_REQUIRE_JTI=False):
        response = exchange(client, token)

    assert_keycloak_response(response)


def test_replayed_assertion_is_refused(client: Client, user: Any, api_key: IssuedSecret) -> None:
    token = sign_assertion(api_key)

    first = exchange(client, token)
    replay = exchange(client, token)
    replay_with_slash = exchange(client, token, "/auth/api-key/")

    assert_keycloak_response(first)
    assert_refusal(replay, CREDENTIALS_REFUSED)
    assert_refusal(replay_with_slash, CREDENTIALS_REFUSED)
    assert Session.objects.count() == 1


def test_same_jti_under_another_key_is_not_a_replay(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    other = api_keys.issue(user, name="other")

    first = exchange(client, sign_assertion(api_key, jti="shared-jti"))
    second = exchange(client, sign_assertion(other, jti="shared-jti"))

    assert_keycloak_response(first)
    assert_keycloak_response(second)


def test_assertion_of_a_revoked_key_is_refused(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    api_keys.revoke(api_key.api_key.key_id)

    assert_refusal(exchange(client, sign_assertion(api_key)), CREDENTIALS_REFUSED)


def test_the_keys_row_is_locked_last_so_exchanges_of_one_key_wait_only_for_a_commit(
    client: Client, api_key: IssuedSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every exchange of a key locks its row (``last_used_at``) against a concurrent
    revocation; the lock is taken by the transaction's last statement, after the session,
    its refresh token, the audit entry and the three signatures, so concurrent exchanges of
    one key never queue behind each other's signatures. The key, its owner and the owner's
    metadata come in one query."""
    assert_keycloak_response(exchange(client, sign_assertion(api_key)))  # keys created
    events: list[str] = []
    real_sign = jws.sign

    def recorded_sign(*args: Any, **kwargs: Any) -> str:
        events.append("sign")
        return real_sign(*args, **kwargs)

    def recorded_statement(execute: Any, sql: str, *args: Any) -> Any:
        events.append(sql)
        return execute(sql, *args)

    monkeypatch.setattr(jws, "sign", recorded_sign)
    with connection.execute_wrapper(recorded_statement):
        response = exchange(client, sign_assertion(api_key))
    assert_keycloak_response(response)

    lock = next(
        i for i, event in enumerate(events) if event.startswith('UPDATE "django_tokens_apikey"')
    )
    # Then only the commit (a savepoint's release when the test runs in a transaction).
    assert all(event.startswith("RELEASE SAVEPOINT") for event in events[lock + 1 :]), events
    assert events[:lock].count("sign") == 3
    before = " ".join(events[:lock])
    for table in ("session", "refreshtoken", "auditevent"):
        assert f'INSERT INTO "django_tokens_{table}"' in before, table
    assert not any(event.startswith('SELECT "django_tokens_usermetadata"') for event in events)
    assert ApiKey.objects.get(pk=api_key.api_key.pk).last_used_at is not None


def test_assertion_of_an_expired_key_is_refused(client: Client, user: Any, frozen: Any) -> None:
    issued = api_keys.issue(user, name="short-lived", expires_in=timedelta(minutes=10))

    frozen.shift(599)
    before = exchange(client, sign_assertion(issued))
    frozen.shift(2)
    after = exchange(client, sign_assertion(issued))

    assert_keycloak_response(before, expires_in=1)
    assert_refusal(after, CREDENTIALS_REFUSED)


def test_assertion_of_an_inactive_owners_key_is_refused(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    user.is_active = False
    user.save()

    assert_refusal(exchange(client, sign_assertion(api_key)), CREDENTIALS_REFUSED)
    assert not Session.objects.exists()


# -- secret rotation -------------------------------------------------------------------------


def test_old_secret_keeps_working_until_the_grace_period_ends(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    rotated = api_keys.rotate_secret(api_key.api_key.key_id, grace=timedelta(hours=1))
    assert rotated.secret != api_key.secret

    frozen.shift(3599)
    old_in_grace = exchange(client, sign_assertion(api_key))
    new_in_grace = exchange(client, sign_assertion(rotated))
    frozen.shift(2)
    old_after_grace = exchange(client, sign_assertion(api_key))
    new_after_grace = exchange(client, sign_assertion(rotated))

    assert_keycloak_response(old_in_grace)
    assert_keycloak_response(new_in_grace)
    assert_refusal(old_after_grace, CREDENTIALS_REFUSED)
    assert_keycloak_response(new_after_grace)


def test_rotation_without_grace_stops_the_old_secret_at_once(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    assert_keycloak_response(exchange(client, sign_assertion(api_key)))

    rotated = api_keys.rotate_secret(api_key.api_key.key_id, grace=timedelta(0))

    assert_refusal(exchange(client, sign_assertion(api_key)), CREDENTIALS_REFUSED)
    assert_keycloak_response(exchange(client, sign_assertion(rotated)))


def test_second_rotation_ends_the_first_secrets_grace(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    second = api_keys.rotate_secret(api_key.api_key.key_id, grace=timedelta(hours=1))
    third = api_keys.rotate_secret(api_key.api_key.key_id, grace=timedelta(hours=1))

    assert_refusal(exchange(client, sign_assertion(api_key)), CREDENTIALS_REFUSED)
    assert_keycloak_response(exchange(client, sign_assertion(second)))
    assert_keycloak_response(exchange(client, sign_assertion(third)))


# -- revocation ------------------------------------------------------------------------------


def test_revoking_a_key_stops_its_access_tokens_refresh_and_assertions_at_once(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    other_key = api_keys.issue(user, name="other")
    revoked = obtain(client, api_key)
    kept = obtain(client, other_key)
    assert get_me(client, revoked["access_token"]).status_code == 200

    assert api_keys.revoke(api_key.api_key.key_id) == 1

    assert get_me(client, revoked["access_token"]).status_code == 401
    assert_refusal(refresh(client, revoked["refresh_token"]), REFRESH_REFUSED)
    assert_refusal(exchange(client, sign_assertion(api_key)), CREDENTIALS_REFUSED)
    assert get_me(client, kept["access_token"]).status_code == 200
    assert_keycloak_response(refresh(client, kept["refresh_token"]))


# -- POST /auth/login ------------------------------------------------------------------------


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_login_returns_the_nine_keys(client: Client, user: Any, path: str) -> None:
    response = post_json(client, path, {"email": "alice@example.com", "password": "alice-password"})

    body = assert_keycloak_response(response)
    assert body["refresh_expires_in"] == 86400
    header, access = verified(client, body["access_token"], audience=AUDIENCE)
    _, refresh_claims = verified(client, body["refresh_token"], audience=ISSUER)
    # The login's ID token is addressed to the token service, not to resource servers: one
    # that checks only the signature and aud cannot take it for an access token.
    _, id_claims = verified(client, body["id_token"], audience=ISSUER)
    with pytest.raises(jwt.InvalidAudienceError):
        verified(client, body["id_token"], audience=AUDIENCE)
    assert header["typ"] == "at+jwt"
    assert access["sid"] == refresh_claims["sid"] == id_claims["sid"] == body["session_state"]
    assert id_claims["email"] == "alice@example.com"
    session = Session.objects.get(pk=body["session_state"])
    assert session.user_id == user.pk
    assert session.api_key is None
    assert get_me(client, body["access_token"]).status_code == 200


@pytest.mark.parametrize("email", ["ALICE@EXAMPLE.COM", "Alice@Example.com"])
def test_login_matches_the_email_case_insensitively(client: Client, user: Any, email: str) -> None:
    body = assert_keycloak_response(login(client, email, "alice-password"))

    assert Session.objects.get(pk=body["session_state"]).user_id == user.pk


LOGIN_REFUSALS = {
    "wrong-password": {"email": "alice@example.com", "password": "not-alices-password"},
    "unknown-email": {"email": "nobody@example.com", "password": "alice-password"},
    "inactive-user": {"email": "carol@example.com", "password": "carol-password"},
    "username-instead-of-email": {"email": "alice", "password": "alice-password"},
    "missing-email": {"password": "alice-password"},
    "missing-password": {"email": "alice@example.com"},
    "empty-object": {},
    "empty-email": {"email": "", "password": "alice-password"},
    "empty-password": {"email": "alice@example.com", "password": ""},
    "numeric-email": {"email": 42, "password": "alice-password"},
    "list-password": {"email": "alice@example.com", "password": ["alice-password"]},
    "null-password": {"email": "alice@example.com", "password": None},
    "object-email": {"email": {"address": "alice@example.com"}, "password": "alice-password"},
    "nul-in-email": {"email": "alice@example.com\x00", "password": "alice-password"},
}


@pytest.mark.parametrize("payload", LOGIN_REFUSALS.values(), ids=LOGIN_REFUSALS.keys())
def test_login_refusal_is_401_with_the_seed_body(
    client: Client, user: Any, django_user_model: Any, payload: dict[str, Any]
) -> None:
    django_user_model.objects.create_user(
        username="carol", password="carol-password", email="carol@example.com", is_active=False
    )

    response = post_json(client, "/auth/login", payload)

    assert_refusal(response, CREDENTIALS_REFUSED)
    assert not Session.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("{email: alice}", id="not-json"),
        pytest.param(b'{"email": "alice@example.com", "password": "\xff"}', id="not-utf8"),
        pytest.param('["alice@example.com", "alice-password"]', id="json-array"),
        pytest.param("null", id="json-null"),
    ],
)
def test_login_with_a_body_that_is_not_a_json_object_is_400(
    client: Client, user: Any, payload: str | bytes
) -> None:
    assert_error(post_json(client, "/auth/login", payload), 400, "invalid_request")


@pytest.mark.parametrize("second_username", ["bob", "alice@example.com"])
def test_two_users_sharing_an_email_cannot_log_in_by_it(
    client: Client, user: Any, django_user_model: Any, second_username: str
) -> None:
    django_user_model.objects.create_user(
        username=second_username, password="bob-password", email="Alice@Example.com"
    )

    for password in ("alice-password", "bob-password"):
        assert_refusal(login(client, "alice@example.com", password), CREDENTIALS_REFUSED)
    assert not Session.objects.exists()


# -- POST /auth/refresh ----------------------------------------------------------------------


@pytest.fixture(params=["api-key", "login"])
def session_tokens(
    request: pytest.FixtureRequest, client: Client, user: Any, api_key: IssuedSecret
) -> dict[str, Any]:
    """The first tokens of a session opened with an API key, or with an email and password."""
    if request.param == "api-key":
        return obtain(client, api_key)
    return assert_keycloak_response(login(client, "alice@example.com", "alice-password"))


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_refresh_returns_the_nine_keys_in_the_same_session_with_a_new_refresh_token(
    client: Client, session_tokens: dict[str, Any], path: str
) -> None:
    first = session_tokens

    second = assert_keycloak_response(refresh(client, first["refresh_token"], path))
    third = assert_keycloak_response(refresh(client, second["refresh_token"], path))

    assert first["session_state"] == second["session_state"] == third["session_state"]
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert second["access_token"] != first["access_token"]
    assert second["refresh_expires_in"] == 86400
    _, access = verified(client, third["access_token"], audience=AUDIENCE)
    _, refresh_claims = verified(client, third["refresh_token"], audience=ISSUER)
    assert access["sid"] == refresh_claims["sid"] == first["session_state"]
    assert get_me(client, third["access_token"]).status_code == 200
    assert Session.objects.count() == 1


def test_refresh_keeps_the_keys_audience_and_scope(client: Client, user: Any) -> None:
    issued = api_keys.issue(user, name="narrow", scopes=["openid", "email"])
    first = obtain(client, issued)

    second = assert_keycloak_response(refresh(client, first["refresh_token"]), scope="openid email")

    _, id_claims = verified(client, second["id_token"], audience=issued.api_key.key_id)
    assert id_claims["email"] == "alice@example.com"
    assert "name" not in id_claims


def test_rotated_refresh_token_presented_after_the_grace_revokes_the_session(
    frozen: Any, client: Client, session_tokens: dict[str, Any]
) -> None:
    with tokens_config(REFRESH_REUSE_GRACE=10):
        first = session_tokens
        second = assert_keycloak_response(refresh(client, first["refresh_token"]))

        frozen.shift(11)
        reused = refresh(client, first["refresh_token"])
        newest = refresh(client, second["refresh_token"])
        me_second = get_me(client, second["access_token"])
        me_first = get_me(client, first["access_token"])

    assert_refusal(reused, REFRESH_REFUSED)
    assert_refusal(newest, REFRESH_REFUSED)
    assert me_second.status_code == 401
    assert me_first.status_code == 401
    assert Session.objects.get(pk=first["session_state"]).revoked_at is not None


def test_retry_of_a_rotated_refresh_token_inside_the_grace_is_answered(
    frozen: Any, client: Client, session_tokens: dict[str, Any]
) -> None:
    with tokens_config(REFRESH_REUSE_GRACE=10):
        first = session_tokens
        assert_keycloak_response(refresh(client, first["refresh_token"]))

        frozen.shift(5)
        retried = assert_keycloak_response(refresh(client, first["refresh_token"]))

    assert retried["session_state"] == first["session_state"]
    assert Session.objects.get(pk=first["session_state"]).revoked_at is None


@pytest.mark.parametrize("field", ["access_token", "id_token"])
def test_access_and_id_tokens_are_not_refresh_tokens(
    client: Client, session_tokens: dict[str, Any], field: str
) -> None:
    assert_refusal(refresh(client, session_tokens[field]), REFRESH_REFUSED)

    assert_keycloak_response(refresh(client, session_tokens["refresh_token"]))


def test_refresh_jwt_of_another_issuer_is_refused(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    other_issuer = "https://other.example"
    with tokens_config(ISSUER=other_issuer):
        foreign = obtain(client, api_key)
    assert unverified(foreign["refresh_token"])["iss"] == other_issuer

    refused = refresh(client, foreign["refresh_token"])
    with tokens_config(ISSUER=other_issuer):
        at_its_own_issuer = refresh(client, foreign["refresh_token"])

    assert_refusal(refused, REFRESH_REFUSED)
    assert_keycloak_response(at_its_own_issuer)


def test_refresh_jwt_signed_by_the_keystore_with_only_its_issuer_changed_is_refused(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    body = obtain(client, api_key)
    key = keystore.signing_key()
    claims = {**unverified(body["refresh_token"]), "iss": "https://other.example"}
    header = jwt.get_unverified_header(body["refresh_token"])

    reissued = jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=header)

    assert_refusal(refresh(client, reissued), REFRESH_REFUSED)
    assert_keycloak_response(refresh(client, body["refresh_token"]))


def _payload_changed(token: str) -> str:
    claims = unverified(token)
    return with_payload(token, {**claims, "exp": claims["exp"] + 3600})


def _resigned_with_a_foreign_key(token: str) -> str:
    header = jwt.get_unverified_header(token)
    return jwt.encode(unverified(token), foreign_rsa_key(), algorithm="RS256", headers=header)


def _alg_none(token: str) -> str:
    header = {**jwt.get_unverified_header(token), "alg": "none"}
    return f"{segment(header)}.{segment(unverified(token))}."


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "payload-changed": _payload_changed,
    "resigned-with-a-foreign-key": _resigned_with_a_foreign_key,
    "signature-stripped": lambda token: token.rpartition(".")[0] + ".",
    "alg-none": _alg_none,
    "truncated": lambda token: token[:-4],
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_tampered_refresh_jwt_is_refused(
    client: Client, user: Any, api_key: IssuedSecret, tamper: Callable[[str], str]
) -> None:
    body = obtain(client, api_key)

    assert_refusal(refresh(client, tamper(body["refresh_token"])), REFRESH_REFUSED)
    assert_keycloak_response(refresh(client, body["refresh_token"]))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="missing"),
        pytest.param({"refresh": "x"}, id="misspelled-key"),
        pytest.param({"refresh_token": None}, id="null"),
        pytest.param({"refresh_token": 42}, id="number"),
        pytest.param({"refresh_token": ""}, id="empty"),
        pytest.param({"refresh_token": "garbage"}, id="garbage"),
        pytest.param({"refresh_token": "A" * 43}, id="opaque-shaped"),
    ],
)
def test_missing_or_malformed_refresh_token_is_the_refresh_refusal(
    client: Client, payload: dict[str, Any]
) -> None:
    assert_refusal(post_json(client, "/auth/refresh", payload), REFRESH_REFUSED)


def test_refresh_token_expires_after_the_api_key_refresh_lifetime(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    used_in_time = obtain(client, api_key)["refresh_token"]
    used_too_late = obtain(client, api_key)["refresh_token"]

    frozen.shift(86400 - 1)
    in_time = refresh(client, used_in_time)
    frozen.shift(2)
    too_late = refresh(client, used_too_late)

    assert_keycloak_response(in_time)
    assert_refusal(too_late, REFRESH_REFUSED)


def test_refresh_lifetime_follows_the_setting(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    with tokens_config(API_KEY_REFRESH_TOKEN_LIFETIME=600):
        body = obtain(client, api_key)
        frozen.shift(601)
        too_late = refresh(client, body["refresh_token"])

    assert body["refresh_expires_in"] == 600
    assert_refusal(too_late, REFRESH_REFUSED)


@pytest.mark.parametrize("expiry", ["issued-with-expiry", "expiry-set-later"])
def test_refresh_is_refused_once_the_key_has_expired(
    client: Client, user: Any, frozen: Any, expiry: str
) -> None:
    if expiry == "issued-with-expiry":
        issued = api_keys.issue(user, name="short-lived", expires_in=timedelta(hours=1))
        first = obtain(client, issued)
    else:
        issued = api_keys.issue(user, name="long-lived")
        first = obtain(client, issued)
        ApiKey.objects.filter(pk=issued.api_key.pk).update(
            expires_at=WINDOW_START + timedelta(seconds=10, hours=1)
        )

    frozen.shift(1800)
    key_expiry = ApiKey.objects.get(pk=issued.api_key.pk).expires_at
    second = assert_keycloak_response(
        refresh(client, first["refresh_token"]),
        expires_in=int((key_expiry - timezone.now()).total_seconds()),
    )
    frozen.shift(1801)
    third = refresh(client, second["refresh_token"])

    assert_refusal(third, REFRESH_REFUSED)


def test_refresh_expires_in_is_capped_by_the_keys_expiry(
    client: Client, user: Any, frozen: Any
) -> None:
    issued = api_keys.issue(user, name="short-lived", expires_in=timedelta(hours=1))

    body = obtain(client, issued)

    assert body["refresh_expires_in"] == 3600
    assert unverified(body["refresh_token"])["exp"] == int(time.time()) + 3600


def test_access_and_id_tokens_do_not_outlive_the_key(
    client: Client, user: Any, frozen: Any
) -> None:
    issued = api_keys.issue(user, name="short-lived", expires_in=timedelta(hours=1))

    body = obtain(client, issued)

    assert body["expires_in"] == 3600
    key_expiry = int(time.time()) + 3600
    assert unverified(body["access_token"])["exp"] == key_expiry
    assert unverified(body["id_token"])["exp"] == key_expiry


def test_refresh_of_a_deactivated_owner_is_refused(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    body = obtain(client, api_key)
    user.is_active = False
    user.save()

    assert_refusal(refresh(client, body["refresh_token"]), REFRESH_REFUSED)


# -- id_token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scopes",
    [
        pytest.param(["openid"], id="openid-only"),
        pytest.param(["openid", "email"], id="email"),
        pytest.param(["openid", "profile"], id="profile"),
        pytest.param(["openid", "app_metadata"], id="app_metadata"),
        pytest.param(["openid", "user_metadata"], id="user_metadata"),
        pytest.param(
            ["openid", "email", "app_metadata", "user_metadata", "profile"], id="default-five"
        ),
    ],
)
def test_id_token_claims_follow_the_keys_scopes(
    client: Client, user: Any, metadata: UserMetadata, scopes: list[str]
) -> None:
    issued = api_keys.issue(user, name="scoped", scopes=scopes)

    body = obtain(client, issued)
    _, claims = verified(client, body["id_token"], audience=issued.api_key.key_id)

    expected_claims = set().union(*(ID_TOKEN_SCOPE_CLAIMS.get(scope, set()) for scope in scopes))
    present = set(claims) & set().union(*ID_TOKEN_SCOPE_CLAIMS.values())
    assert present == expected_claims
    expected_values = {
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Liddell",
        "preferred_username": "alice",
        "app_metadata": {"plan": "gold", "roles": ["admin", "billing"]},
        "user_metadata": {"theme": "dark", "locale": "en-GB"},
    }
    assert {name: claims[name] for name in present} == {
        name: expected_values[name] for name in expected_claims
    }
    assert claims["aud"] == issued.api_key.key_id
    assert claims["sub"] == str(user.pk)
    assert claims["sid"] == body["session_state"]


def test_id_token_without_user_metadata_has_unverified_email_and_empty_objects(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    body = obtain(client, api_key)

    _, claims = verified(client, body["id_token"], audience=api_key.api_key.key_id)

    assert claims["email_verified"] is False
    assert claims["app_metadata"] == {}
    assert claims["user_metadata"] == {}
    assert claims["name"] == "alice"


def test_id_token_follows_metadata_edits(
    client: Client, user: Any, api_key: IssuedSecret, metadata: UserMetadata
) -> None:
    first = obtain(client, api_key)
    metadata.email_verified = False
    metadata.app_metadata = {"plan": "free"}
    metadata.save()

    second = assert_keycloak_response(refresh(client, first["refresh_token"]))

    _, claims = verified(client, second["id_token"], audience=api_key.api_key.key_id)
    assert claims["email_verified"] is False
    assert claims["app_metadata"] == {"plan": "free"}


@pytest.mark.parametrize("field", ["id_token", "refresh_token"])
def test_id_token_and_refresh_jwt_are_refused_by_api_me(
    client: Client, session_tokens: dict[str, Any], field: str
) -> None:
    refused = get_me(client, session_tokens[field])
    accepted = get_me(client, session_tokens["access_token"])

    assert refused.status_code == 401
    assert accepted.status_code == 200


def test_assertion_is_refused_by_api_me(client: Client, user: Any, api_key: IssuedSecret) -> None:
    assert get_me(client, sign_assertion(api_key)).status_code == 401


# -- throttling ----------------------------------------------------------------------------


def test_key_is_locked_after_the_failure_limit_even_for_a_valid_assertion(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    other_key = api_keys.issue(user, name="other")
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW, THROTTLE_FAILURES_PER_KEY=3, THROTTLE_FAILURES_PER_IP=100
    ):
        for _ in range(3):
            wrong = exchange(client, sign_assertion(api_key, secret="y" * 64))
            assert_refusal(wrong, CREDENTIALS_REFUSED)
        locked = exchange(client, sign_assertion(api_key))
        other = exchange(client, sign_assertion(other_key))

    assert_error(locked, 429, "too_many_attempts")
    assert 1 <= int(locked["Retry-After"]) <= THROTTLE_WINDOW + 1
    assert_keycloak_response(other)
    assert Session.objects.filter(api_key=api_key.api_key).count() == 0


def test_key_lockout_lifts_after_retry_after(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW, THROTTLE_FAILURES_PER_KEY=2, THROTTLE_FAILURES_PER_IP=100
    ):
        for _ in range(2):
            exchange(client, sign_assertion(api_key, secret="y" * 64))
        locked = exchange(client, sign_assertion(api_key))
        assert_error(locked, 429, "too_many_attempts")

        frozen.shift(int(locked["Retry-After"]))
        response = exchange(client, sign_assertion(api_key))

    assert_keycloak_response(response)


def test_failures_without_a_key_id_count_against_the_ip(
    client: Client, user: Any, api_key: IssuedSecret, frozen: Any
) -> None:
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW, THROTTLE_FAILURES_PER_KEY=100, THROTTLE_FAILURES_PER_IP=3
    ):
        for _ in range(3):
            assert_refusal(exchange(client, "garbage"), CREDENTIALS_REFUSED)
        same_ip = exchange(client, sign_assertion(api_key))
        other_ip = exchange(client, sign_assertion(api_key), REMOTE_ADDR="10.9.8.7")

    assert_error(same_ip, 429, "too_many_attempts")
    assert_keycloak_response(other_ip)


def test_login_email_is_locked_after_the_failure_limit_whatever_its_case(
    client: Client, user: Any, django_user_model: Any, frozen: Any
) -> None:
    django_user_model.objects.create_user(
        username="bob", password="bob-password", email="bob@example.com"
    )
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW,
        THROTTLE_FAILURES_PER_USERNAME=3,
        THROTTLE_FAILURES_PER_IP=100,
    ):
        for email in ("alice@example.com", "ALICE@example.com", "alice@EXAMPLE.com"):
            assert_refusal(login(client, email, "wrong"), CREDENTIALS_REFUSED)
        locked = login(client, "alice@example.com", "alice-password")
        locked_other_case = login(client, "Alice@Example.com", "alice-password")
        other_user = login(client, "bob@example.com", "bob-password")

    assert_error(locked, 429, "too_many_attempts")
    assert int(locked["Retry-After"]) >= 1
    assert_error(locked_other_case, 429, "too_many_attempts")
    assert_keycloak_response(other_user)
    assert not Session.objects.filter(user=user).exists()


# -- shared cache unreachable ----------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "z" * 64], ids=["valid", "wrong-secret"])
def test_unreachable_cache_refuses_assertions_with_503(
    client: Client, user: Any, api_key: IssuedSecret, secret: str | None
) -> None:
    token = sign_assertion(api_key, secret=secret)

    with unreachable_cache():
        response = exchange(client, token)

    assert_error(response, 503, "temporarily_unavailable")
    assert not Session.objects.exists()


def test_unreachable_replay_store_refuses_a_valid_assertion_with_503(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    """No throttle is configured, so the replay record is the only use of the cache."""
    token = sign_assertion(api_key)

    with unreachable_cache(THROTTLE_FAILURES_PER_KEY=0, THROTTLE_FAILURES_PER_IP=0):
        unavailable = exchange(client, token)
    accepted_once_the_cache_is_back = exchange(client, token)
    replay = exchange(client, token)

    assert_error(unavailable, 503, "temporarily_unavailable")
    assert_keycloak_response(accepted_once_the_cache_is_back)
    assert_refusal(replay, CREDENTIALS_REFUSED)


@pytest.mark.parametrize("password", ["alice-password", "wrong"])
def test_unreachable_cache_refuses_login_with_503(client: Client, user: Any, password: str) -> None:
    with unreachable_cache():
        response = login(client, "alice@example.com", password)

    assert_error(response, 503, "temporarily_unavailable")
    assert not Session.objects.exists()


def test_refresh_and_access_tokens_keep_working_while_the_cache_is_unreachable(
    client: Client, user: Any, api_key: IssuedSecret
) -> None:
    body = obtain(client, api_key)

    with unreachable_cache():
        refreshed = refresh(client, body["refresh_token"])
        me = get_me(client, body["access_token"])

    assert_keycloak_response(refreshed)
    assert me.status_code == 200, me.content
    assert RefreshToken.objects.filter(session_id=body["session_state"]).count() == 2


# -- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/auth/", "/auth/unknown", "/auth/api-key/extra", "/auth/login/x/y", "/auth/token"]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_path_under_auth_is_404_json(client: Client, path: str, method: str) -> None:
    response = getattr(client, method)(path, headers={"Accept": "text/html"})

    assert_refusal(response, {"error": "not_found", "message": "Not Found"}, status=404)


@pytest.mark.parametrize("path", API_KEY_PATHS + LOGIN_PATHS + REFRESH_PATHS)
def test_get_on_the_token_endpoints_is_405_json(client: Client, path: str) -> None:
    response = client.get(path, headers={"Accept": "text/html"})

    assert_error(response, 405, "method_not_allowed")
    allowed = {name.strip() for name in response["Allow"].split(",")}
    assert "POST" in allowed
    assert "GET" not in allowed


@pytest.mark.redis
def test_on_redis_the_replay_record_and_the_stamp_take_one_round_trip(
    client: Client, api_key: IssuedSecret
) -> None:
    """The assertion's record and the stamp of when the records began are written by one
    script; both read back through the cache API, the record with the assertion's lifetime."""
    import redis as redis_py
    from django.core.cache import caches

    from django_tokens.conf import token_settings
    from django_tokens.crypto import digest
    from django_tokens.services.api_key import RECORDS_SINCE_KEY, REPLAY_PREFIX

    cache = caches[token_settings.CACHE_ALIAS]
    assert_keycloak_response(exchange(client, sign_assertion(api_key)))  # the keystore loaded
    cache.delete(RECORDS_SINCE_KEY)
    # A key that opened no session before the records began: its assertion is accepted.
    api_key = api_keys.issue(api_key.api_key.owner, name="fresh")
    jti = uuid.uuid4().hex
    token = sign_assertion(api_key, jti=jti)
    sent: list[str] = []
    original = redis_py.Redis.execute_command

    def counted(self: Any, *args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return original(self, *args, **options)

    before = int(time.time() * 1000)
    redis_py.Redis.execute_command = counted  # type: ignore[method-assign]
    try:
        response = exchange(client, token)
    finally:
        redis_py.Redis.execute_command = original  # type: ignore[method-assign]

    assert_keycloak_response(response)
    # The key's failure throttle (count, then forget) and the replay record.
    assert sent == ["EVAL", "EVAL", "EVAL"], sent
    since = cache.get(RECORDS_SINCE_KEY)
    assert isinstance(since, int)
    assert before <= since <= int(time.time() * 1000)
    record = f"{REPLAY_PREFIX}:{digest(api_key.api_key.key_id)[:32]}:{digest(jti)}"
    assert cache.get(record) == 1
    ttl = cache._cache.get_client(None).ttl(cache.make_and_validate_key(record))
    assert 0 < ttl <= 60 + token_settings.LEEWAY + 1
    assert cache._cache.get_client(None).ttl(cache.make_and_validate_key(RECORDS_SINCE_KEY)) == -1
    assert exchange(client, token).json() == CREDENTIALS_REFUSED
