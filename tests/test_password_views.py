"""``POST /api/token`` and ``POST /api/token/refresh`` over HTTP (seed 001, SPEC sections 1 and 4).

Everything runs through the Django test client against the real database and the configured
cache; the failure cases use a Redis server that cannot be reached.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import time_machine
from django.apps import apps
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from django_tokens.models import RefreshToken, Session
from example_project.demo.models import CustomerProfile

TOKEN_PATHS = ["/api/token", "/api/token/"]
REFRESH_PATHS = ["/api/token/refresh", "/api/token/refresh/"]
TOKEN_KEYS = {"token_type", "expires_in", "access_token", "refresh_token"}
URL_SAFE_256_BITS = re.compile(r"[A-Za-z0-9_-]{43,}")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
ISSUER = "http://testserver"
AUDIENCE = "django-tokens"
SERVER_ERROR = {"error": "server_error", "message": "Unknown Error Occurred"}
THROTTLE_WINDOW = 60
#: A moment that starts a throttle window, so a test never straddles two windows by chance.
WINDOW_START = datetime(2031, 3, 4, 5, 6, 0, tzinfo=UTC)


def failing_claims_hook(user: Any, *, service: str, scopes: list[str]) -> dict[str, Any]:
    raise RuntimeError("the claims backend is down")


def tokens_config(**overrides: Any) -> override_settings:
    """``override_settings`` for some ``DJANGO_TOKENS`` keys, the rest kept from the settings."""
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


def unreachable_cache() -> override_settings:
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
        DJANGO_TOKENS={**settings.DJANGO_TOKENS, "CACHE_ALIAS": "unreachable"},
    )


def post_json(client: Client, path: str, payload: Any, **extra: Any) -> Any:
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(path, body, content_type="application/json", **extra)


def obtain(client: Client, credentials: dict[str, str], **extra: Any) -> dict[str, Any]:
    response = post_json(client, "/api/token", credentials, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def refresh(client: Client, refresh_token: str) -> Any:
    return post_json(client, "/api/token/refresh", {"refresh_token": refresh_token})


def get_me(client: Client, access_token: str) -> Any:
    return client.get("/api/me", headers={"Authorization": f"Bearer {access_token}"})


def assert_no_store(response: Any) -> None:
    assert response["Cache-Control"] == "no-store"


def assert_token_response(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert_no_store(response)
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "bearer"
    assert type(body["expires_in"]) is int
    assert JWT_SHAPE.fullmatch(body["access_token"])
    assert URL_SAFE_256_BITS.fullmatch(body["refresh_token"])
    return body


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert_no_store(response)
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def verified_claims(client: Client, access_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token's header and claims, its signature checked with the published JWKS."""
    header = jwt.get_unverified_header(access_token)
    jwks = client.get("/.well-known/jwks.json").json()
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    claims = jwt.decode(
        access_token,
        jwt.PyJWK(jwk).key,
        algorithms=[jwk["alg"]],
        audience=AUDIENCE,
        issuer=ISSUER,
    )
    return header, claims


def stored_refresh_digests() -> set[str]:
    return set(RefreshToken.objects.values_list("token_hash", flat=True))


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def profile(user: Any) -> CustomerProfile:
    user.first_name, user.last_name = "Alice", "Liddell"
    user.save()
    return CustomerProfile.objects.create(
        user=user,
        phone="25472100200",
        client="George_Gatheca",
        parent="George_Gatheca",
        level="CUSTOMER",
        utype="API",
        cust_id=7,
    )


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(WINDOW_START + timedelta(seconds=10), tick=False) as traveller:
        yield traveller


# -- issuing ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_json_credentials_return_exactly_the_four_token_keys(
    client: Client, user: Any, password_credentials: dict[str, str], path: str
) -> None:
    body = assert_token_response(post_json(client, path, password_credentials))

    assert body["expires_in"] == 3600


@pytest.mark.django_db
@pytest.mark.parametrize("path", TOKEN_PATHS)
@pytest.mark.parametrize("body", [None, "{}"], ids=["no-body", "empty-object"])
def test_header_credentials_are_used_when_the_body_has_none(
    client: Client, user: Any, path: str, body: str | None
) -> None:
    headers = {"username": "alice", "password": "alice-password"}
    if body is None:
        response = client.generic("POST", path, headers=headers)
    else:
        response = client.post(path, body, content_type="application/json", headers=headers)

    assert_token_response(response)


@pytest.mark.django_db
def test_wrong_password_in_headers_is_invalid_credentials(client: Client, user: Any) -> None:
    headers = {"username": "alice", "password": "nope"}

    response = client.generic("POST", "/api/token", headers=headers)

    assert_error(response, 401, "invalid_credentials")


@pytest.mark.django_db
def test_body_credentials_take_precedence_over_headers(client: Client, user: Any) -> None:
    response = post_json(
        client,
        "/api/token",
        {"username": "alice", "password": "wrong-password"},
        headers={"username": "alice", "password": "alice-password"},
    )

    assert_error(response, 401, "invalid_credentials")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lifetime", "seconds"), [(120, 120), (timedelta(minutes=5), 300)], ids=["int", "timedelta"]
)
def test_expires_in_follows_the_access_token_lifetime_setting(
    client: Client, user: Any, password_credentials: dict[str, str], lifetime: Any, seconds: int
) -> None:
    with tokens_config(ACCESS_TOKEN_LIFETIME=lifetime):
        body = assert_token_response(post_json(client, "/api/token", password_credentials))
        _, claims = verified_claims(client, body["access_token"])

    assert body["expires_in"] == seconds
    assert claims["exp"] - claims["iat"] == seconds


@pytest.mark.django_db
def test_access_token_carries_the_registered_claims_and_the_hook_claims(
    client: Client, user: Any, profile: CustomerProfile, password_credentials: dict[str, str]
) -> None:
    before = int(timezone.now().timestamp())
    body = obtain(client, password_credentials)
    header, claims = verified_claims(client, body["access_token"])

    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"]
    session = Session.objects.get(user=user)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == str(user.pk)
    assert claims["aud"] == AUDIENCE
    assert before <= claims["iat"] <= before + 5
    assert claims["exp"] == claims["iat"] + 3600
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert claims["sid"] == str(session.pk)
    assert set(claims["scope"].split()) == {"profile", "email"}
    assert {
        name: claims[name]
        for name in ("name", "email", "phone", "client", "parent", "level", "utype", "cust_id")
    } == {
        "name": "Alice Liddell",
        "email": "alice@example.com",
        "phone": "25472100200",
        "client": "George_Gatheca",
        "parent": "George_Gatheca",
        "level": "CUSTOMER",
        "utype": "API",
        "cust_id": 7,
    }


@pytest.mark.django_db
def test_each_login_gets_its_own_session_jti_and_refresh_token(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    first = obtain(client, password_credentials)
    second = obtain(client, password_credentials)
    _, first_claims = verified_claims(client, first["access_token"])
    _, second_claims = verified_claims(client, second["access_token"])

    assert first["refresh_token"] != second["refresh_token"]
    assert first_claims["jti"] != second_claims["jti"]
    assert first_claims["sid"] != second_claims["sid"]


@pytest.mark.django_db
def test_only_the_digest_of_the_refresh_token_is_stored(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    raw = obtain(client, password_credentials)["refresh_token"]

    assert sha256(raw) in stored_refresh_digests()
    for model in apps.get_models(include_auto_created=True):
        for row in model._default_manager.values_list():
            assert not any(raw in str(value) for value in row), model._meta.label


@pytest.mark.django_db
def test_issued_access_token_authenticates_at_api_me(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    body = obtain(client, password_credentials)

    response = get_me(client, body["access_token"])

    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"
    assert response.json()["id"] == user.pk


@pytest.mark.django_db
def test_api_me_without_a_token_is_401_json(client: Client) -> None:
    response = client.get("/api/me")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()


# -- credential errors --------------------------------------------------------------------


@pytest.mark.django_db
def test_wrong_password_unknown_user_and_inactive_user_get_the_identical_401(
    client: Client, user: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user(
        username="carol", password="carol-password", is_active=False
    )
    attempts = {
        "wrong password": {"username": "alice", "password": "not-alices-password"},
        "unknown user": {"username": "nobody", "password": "alice-password"},
        "inactive user": {"username": "carol", "password": "carol-password"},
    }

    responses = {name: post_json(client, "/api/token", body) for name, body in attempts.items()}

    for response in responses.values():
        assert_error(response, 401, "invalid_credentials")
    assert len({response.content for response in responses.values()}) == 1
    assert not Session.objects.exists()


# -- malformed requests -------------------------------------------------------------------

MALFORMED_TOKEN_BODIES = [
    pytest.param("{username: alice}", id="not-json"),
    pytest.param(b'{"username": "alice", "password": "\xff\xfe"}', id="not-utf8"),
    pytest.param('["alice", "alice-password"]', id="json-array"),
    pytest.param("null", id="json-null"),
    pytest.param('"alice"', id="json-string"),
    pytest.param("42", id="json-number"),
    pytest.param("{}", id="empty-object-no-headers"),
    pytest.param({"password": "alice-password"}, id="missing-username"),
    pytest.param({"username": "alice"}, id="missing-password"),
    pytest.param({"username": 42, "password": "alice-password"}, id="numeric-username"),
    pytest.param({"username": "alice", "password": ["alice-password"]}, id="list-password"),
    pytest.param({"username": "alice", "password": None}, id="null-password"),
    pytest.param({"username": "alice", "password": True}, id="boolean-password"),
    pytest.param({"username": {"name": "alice"}, "password": "x"}, id="object-username"),
    pytest.param({"username": "", "password": "alice-password"}, id="empty-username"),
    pytest.param({"username": "alice", "password": ""}, id="empty-password"),
    pytest.param({"username": "a" * 4097, "password": "alice-password"}, id="long-username"),
    pytest.param({"username": "alice", "password": "p" * 4097}, id="long-password"),
    pytest.param({"username": "ali\x00ce", "password": "alice-password"}, id="nul-username"),
    pytest.param({"username": "alice", "password": "alice\x00password"}, id="nul-password"),
    pytest.param('{"username": "\\ud800", "password": "x"}', id="lone-surrogate-username"),
    pytest.param('{"username": "alice", "password": "\\udfff"}', id="lone-surrogate-password"),
    pytest.param("[" * 100_000 + "]" * 100_000, id="nested-too-deep"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("payload", MALFORMED_TOKEN_BODIES)
def test_malformed_token_request_is_400_invalid_request(
    client: Client, user: Any, payload: Any
) -> None:
    response = post_json(client, "/api/token", payload)

    assert_error(response, 400, "invalid_request")
    assert not Session.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"username": "alice"}, id="missing-password"),
        pytest.param({"password": "alice-password"}, id="missing-username"),
        pytest.param({"username": "ali\x00ce", "password": "alice-password"}, id="nul"),
        pytest.param({"username": "alice", "password": "p" * 4097}, id="long-password"),
    ],
)
def test_malformed_header_credentials_are_400_invalid_request(
    client: Client, user: Any, headers: dict[str, str]
) -> None:
    response = client.generic("POST", "/api/token", headers=headers)

    assert_error(response, 400, "invalid_request")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"username": "a" * 4096, "password": "alice-password"}, id="username"),
        pytest.param({"username": "alice", "password": "p" * 4096}, id="password"),
    ],
)
def test_credentials_of_exactly_4096_characters_are_checked_not_refused(
    client: Client, user: Any, credentials: dict[str, str]
) -> None:
    response = post_json(client, "/api/token", credentials)

    assert_error(response, 401, "invalid_credentials")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "username=alice&password=alice-password"),
        ("text/plain", '{"username": "alice", "password": "alice-password"}'),
    ],
    ids=["form", "text"],
)
@pytest.mark.parametrize("path", ["/api/token", "/api/token/refresh"])
def test_non_json_content_type_is_415(
    client: Client, user: Any, path: str, content_type: str, body: str
) -> None:
    response = client.post(path, body, content_type=content_type)

    assert_error(response, 415, "unsupported_media_type")
    assert not Session.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", TOKEN_PATHS + REFRESH_PATHS)
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_methods_other_than_post_are_405_with_allow(client: Client, path: str, method: str) -> None:
    response = getattr(client, method)(path)

    assert_error(response, 405, "method_not_allowed")
    allowed = {name.strip() for name in response["Allow"].split(",")}
    assert "POST" in allowed
    assert method.upper() not in allowed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/token/unknown", "/api/token/refresh/extra", "/api/token/refresh/x/y"]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_path_under_api_token_is_404_json(client: Client, path: str, method: str) -> None:
    response = getattr(client, method)(path, headers={"Accept": "text/html"})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert_no_store(response)
    assert response.json() == {"error": "not_found", "message": "Not Found"}


@pytest.mark.django_db
def test_accept_text_html_still_gets_json(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    accept = {"Accept": "text/html,application/xhtml+xml"}

    assert_token_response(post_json(client, "/api/token", password_credentials, headers=accept))
    assert_error(
        post_json(client, "/api/token", {"username": "alice", "password": "x"}, headers=accept),
        401,
        "invalid_credentials",
    )
    assert_error(post_json(client, "/api/token", "[]", headers=accept), 400, "invalid_request")
    assert_error(client.get("/api/token", headers=accept), 405, "method_not_allowed")


# -- throttling ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_username_is_locked_after_the_failure_limit_even_with_the_right_password(
    client: Client, user: Any, password_credentials: dict[str, str], frozen: Any
) -> None:
    wrong = {"username": "alice", "password": "wrong"}
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW,
        THROTTLE_FAILURES_PER_USERNAME=3,
        THROTTLE_FAILURES_PER_IP=100,
    ):
        for _ in range(3):
            assert_error(post_json(client, "/api/token", wrong), 401, "invalid_credentials")
        locked = post_json(client, "/api/token", password_credentials)
        other_user = post_json(client, "/api/token", {"username": "bob", "password": "x"})

    assert_error(locked, 429, "too_many_attempts")
    assert 1 <= int(locked["Retry-After"]) <= THROTTLE_WINDOW + 1
    assert not Session.objects.exists()
    assert_error(other_user, 401, "invalid_credentials")


@pytest.mark.django_db
def test_failures_for_different_usernames_count_against_the_ip(
    client: Client, user: Any, password_credentials: dict[str, str], frozen: Any
) -> None:
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW,
        THROTTLE_FAILURES_PER_USERNAME=100,
        THROTTLE_FAILURES_PER_IP=3,
    ):
        for name in ("mallory", "trent", "eve"):
            response = post_json(client, "/api/token", {"username": name, "password": "guess"})
            assert_error(response, 401, "invalid_credentials")
        same_ip = post_json(client, "/api/token", password_credentials)
        other_ip = post_json(client, "/api/token", password_credentials, REMOTE_ADDR="10.9.8.7")

    assert_error(same_ip, 429, "too_many_attempts")
    assert int(same_ip["Retry-After"]) >= 1
    assert_token_response(other_ip)


@pytest.mark.django_db
def test_lockout_lifts_once_retry_after_has_passed(
    client: Client, user: Any, password_credentials: dict[str, str], frozen: Any
) -> None:
    wrong = {"username": "alice", "password": "wrong"}
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW,
        THROTTLE_FAILURES_PER_USERNAME=2,
        THROTTLE_FAILURES_PER_IP=100,
    ):
        for _ in range(2):
            post_json(client, "/api/token", wrong)
        locked = post_json(client, "/api/token", password_credentials)
        assert_error(locked, 429, "too_many_attempts")
        retry_after = int(locked["Retry-After"])
        assert retry_after > 2

        frozen.shift(retry_after - 2)
        assert_error(
            post_json(client, "/api/token", password_credentials), 429, "too_many_attempts"
        )

        frozen.shift(2)
        assert_token_response(post_json(client, "/api/token", password_credentials))


@pytest.mark.django_db
def test_successful_login_clears_the_username_failure_count(
    client: Client, user: Any, password_credentials: dict[str, str], frozen: Any
) -> None:
    wrong = {"username": "alice", "password": "wrong"}
    with tokens_config(
        THROTTLE_WINDOW=THROTTLE_WINDOW,
        THROTTLE_FAILURES_PER_USERNAME=3,
        THROTTLE_FAILURES_PER_IP=100,
    ):
        for _ in range(2):
            assert_error(post_json(client, "/api/token", wrong), 401, "invalid_credentials")
        assert_token_response(post_json(client, "/api/token", password_credentials))
        for _ in range(2):
            assert_error(post_json(client, "/api/token", wrong), 401, "invalid_credentials")

        response = post_json(client, "/api/token", password_credentials)

    assert_token_response(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "alice", "password": "alice-password"},
        {"username": "alice", "password": "wrong"},
    ],
    ids=["right-password", "wrong-password"],
)
def test_unreachable_cache_fails_closed_with_503(
    client: Client, user: Any, credentials: dict[str, str]
) -> None:
    with unreachable_cache():
        response = post_json(client, "/api/token", credentials)

    assert_error(response, 503, "temporarily_unavailable")
    assert "access_token" not in response.json()
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_issued_access_tokens_keep_verifying_while_the_cache_is_unreachable(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    body = obtain(client, password_credentials)

    with unreachable_cache():
        response = get_me(client, body["access_token"])

    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"


# -- refresh ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_refresh_returns_the_four_keys_and_a_new_refresh_token(
    client: Client, user: Any, password_credentials: dict[str, str], path: str
) -> None:
    first = obtain(client, password_credentials)

    second = assert_token_response(
        post_json(client, path, {"refresh_token": first["refresh_token"]})
    )

    assert second["expires_in"] == 3600
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    _, first_claims = verified_claims(client, first["access_token"])
    _, second_claims = verified_claims(client, second["access_token"])
    assert second_claims["sid"] == first_claims["sid"]
    assert second_claims["sub"] == str(user.pk)
    assert sha256(second["refresh_token"]) in stored_refresh_digests()
    assert get_me(client, second["access_token"]).status_code == 200
    assert_token_response(refresh(client, second["refresh_token"]))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("grace", "later"), [(None, 11), (0, 1)], ids=["default-grace-passed", "no-grace"]
)
def test_reused_refresh_token_after_the_grace_window_revokes_the_session(
    client: Client,
    user: Any,
    password_credentials: dict[str, str],
    frozen: Any,
    grace: int | None,
    later: int,
) -> None:
    overrides = {} if grace is None else {"REFRESH_REUSE_GRACE": grace}
    with tokens_config(**overrides):
        first = obtain(client, password_credentials)
        second = assert_token_response(refresh(client, first["refresh_token"]))
        assert get_me(client, second["access_token"]).status_code == 200

        frozen.shift(later)
        reused = refresh(client, first["refresh_token"])
        newest = refresh(client, second["refresh_token"])
        me_with_newest_access = get_me(client, second["access_token"])
        me_with_first_access = get_me(client, first["access_token"])

    assert_error(reused, 401, "invalid_grant")
    assert_error(newest, 401, "invalid_grant")
    assert me_with_newest_access.status_code == 401
    assert me_with_first_access.status_code == 401
    assert Session.objects.get().revoked_at is not None


@pytest.mark.django_db
def test_retry_of_a_rotated_refresh_token_inside_the_grace_window_succeeds(
    client: Client, user: Any, password_credentials: dict[str, str], frozen: Any
) -> None:
    with tokens_config(REFRESH_REUSE_GRACE=10):
        first = obtain(client, password_credentials)
        second = assert_token_response(refresh(client, first["refresh_token"]))

        frozen.shift(5)
        retried = assert_token_response(refresh(client, first["refresh_token"]))

        frozen.shift(20)
        after = assert_token_response(refresh(client, retried["refresh_token"]))

    assert retried["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    assert after["refresh_token"] != retried["refresh_token"]
    assert get_me(client, after["access_token"]).status_code == 200
    assert Session.objects.get().revoked_at is None


@pytest.mark.django_db
def test_refresh_token_expires_after_its_lifetime(
    client: Client, user: Any, password_credentials: dict[str, str], frozen: Any
) -> None:
    with tokens_config(REFRESH_TOKEN_LIFETIME=600):
        used_in_time = obtain(client, password_credentials)["refresh_token"]
        used_too_late = obtain(client, password_credentials)["refresh_token"]

        frozen.shift(599)
        in_time = refresh(client, used_in_time)
        frozen.shift(2)
        too_late = refresh(client, used_too_late)

    assert_token_response(in_time)
    assert_error(too_late, 401, "invalid_grant")


@pytest.mark.django_db
def test_refresh_token_of_a_deactivated_user_is_refused(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    body = obtain(client, password_credentials)
    user.is_active = False
    user.save()

    assert_error(refresh(client, body["refresh_token"]), 401, "invalid_grant")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="short"),
        pytest.param("A" * 43, id="well-formed-but-unknown"),
        pytest.param("x" * 600, id="long"),
    ],
)
def test_unknown_refresh_token_is_401_invalid_grant(client: Client, token: str) -> None:
    assert_error(refresh(client, token), 401, "invalid_grant")


@pytest.mark.django_db
def test_access_token_is_not_accepted_as_a_refresh_token(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    body = obtain(client, password_credentials)

    assert_error(refresh(client, body["access_token"]), 401, "invalid_grant")


MALFORMED_REFRESH_BODIES = [
    pytest.param("{}", id="missing"),
    pytest.param({"refresh": "abc"}, id="misspelled-key"),
    pytest.param({"refresh_token": None}, id="null"),
    pytest.param({"refresh_token": 42}, id="number"),
    pytest.param({"refresh_token": ["abc"]}, id="list"),
    pytest.param({"refresh_token": ""}, id="empty"),
    pytest.param({"refresh_token": "abc\x00def"}, id="nul"),
    pytest.param('{"refresh_token": "\\udfff"}', id="lone-surrogate"),
    pytest.param("[]", id="json-array"),
    pytest.param("null", id="json-null"),
    pytest.param("not json", id="not-json"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("payload", MALFORMED_REFRESH_BODIES)
def test_malformed_refresh_request_is_400_invalid_request(client: Client, payload: Any) -> None:
    assert_error(post_json(client, "/api/token/refresh", payload), 400, "invalid_request")


# -- unexpected errors --------------------------------------------------------------------


def leaked_secrets(text: str) -> list[str]:
    """Anything in ``text`` shaped like a JWT, or whose digest is a stored refresh token."""
    digests = stored_refresh_digests()
    found = JWT_SHAPE.findall(text)
    found += [word for word in URL_SAFE_256_BITS.findall(text) if sha256(word) in digests]
    return found


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    return "\n".join(parts)


@pytest.mark.django_db
def test_unexpected_error_while_issuing_is_a_500_json_without_secrets_in_body_or_log(
    client: Client, django_user_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Correct-Horse-Battery-Staple-8841"
    django_user_model.objects.create_user(username="dave", password=password)

    with tokens_config(CLAIMS_HOOK=f"{__name__}.failing_claims_hook"):
        response = post_json(client, "/api/token", {"username": "dave", "password": password})

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert_no_store(response)
    assert response.json() == SERVER_ERROR
    assert b"Traceback" not in response.content
    assert b"claims backend" not in response.content
    assert any(
        record.exc_info and isinstance(record.exc_info[1], RuntimeError)
        for record in caplog.records
    )
    text = logged_text(caplog)
    assert "claims backend is down" in text
    assert password not in text
    assert leaked_secrets(text) == []


@pytest.mark.django_db
def test_unexpected_error_while_refreshing_is_a_500_json_without_the_token_in_the_log(
    client: Client,
    user: Any,
    password_credentials: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = obtain(client, password_credentials)
    caplog.clear()

    with tokens_config(CLAIMS_HOOK=f"{__name__}.failing_claims_hook"):
        response = refresh(client, body["refresh_token"])

    assert response.status_code == 500
    assert response.json() == SERVER_ERROR
    assert_no_store(response)
    text = logged_text(caplog)
    assert "claims backend is down" in text
    assert body["refresh_token"] not in text
    assert body["access_token"] not in text
    assert leaked_secrets(text) == []


@pytest.mark.django_db
def test_a_failed_issuance_leaves_no_session_behind(client: Client, user: Any) -> None:
    with tokens_config(CLAIMS_HOOK=f"{__name__}.failing_claims_hook"):
        response = post_json(
            client, "/api/token", {"username": "alice", "password": "alice-password"}
        )

    assert response.status_code == 500
    assert not Session.objects.exists()
    assert not RefreshToken.objects.exists()


@pytest.mark.django_db
def test_a_failed_refresh_leaves_the_presented_token_unused(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    body = obtain(client, password_credentials)

    with tokens_config(CLAIMS_HOOK=f"{__name__}.failing_claims_hook", REFRESH_REUSE_GRACE=0):
        assert refresh(client, body["refresh_token"]).status_code == 500

    # No grace window: had the failed attempt rotated the token, this would be reuse.
    with tokens_config(REFRESH_REUSE_GRACE=0):
        retried = refresh(client, body["refresh_token"])
    assert retried.status_code == 200
    assert RefreshToken.objects.filter(used_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_with_throttling_disabled_an_unreachable_cache_does_not_turn_failures_into_503(
    client: Client, user: Any
) -> None:
    with (
        unreachable_cache(),
        tokens_config(
            CACHE_ALIAS="unreachable",
            THROTTLE_FAILURES_PER_USERNAME=0,
            THROTTLE_FAILURES_PER_IP=0,
        ),
    ):
        wrong = post_json(client, "/api/token", {"username": "alice", "password": "wrong"})
        right = post_json(client, "/api/token", {"username": "alice", "password": "alice-password"})

    assert_error(wrong, 401, "invalid_credentials")
    assert right.status_code == 200
