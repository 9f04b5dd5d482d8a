"""The refresh-cookie mode, logout, the Origin check and CORS, over HTTP.

Requests go through the whole middleware stack of the example project (django-cors-headers
included) to the real views and database. Cookies are sent by hand, in a ``Cookie`` header,
so that each test says exactly what a browser would send.
"""

from __future__ import annotations

import json
from http.cookies import Morsel, SimpleCookie
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings
from django.utils import timezone

from django_tokens import api_keys
from django_tokens.audit import Action
from django_tokens.models import AuditEvent, Session
from tests.shapes import KEYCLOAK_KEYS
from tests.test_api_key_views import obtain

FRONT_END = "http://127.0.0.1:8001"
OTHER_PORT = "http://127.0.0.1:8002"
PASSWORD_KEYS = {"token_type", "expires_in", "access_token", "refresh_token"}
COOKIE = "refresh_token"

pytestmark = pytest.mark.django_db


def cookie_mode(*services: str, **overrides: Any) -> override_settings:
    return override_settings(
        DJANGO_TOKENS={**settings.DJANGO_TOKENS, "REFRESH_COOKIE_SERVICES": list(services)},
        CORS_ALLOWED_ORIGINS=[FRONT_END],
        **overrides,
    )


@pytest.fixture
def client() -> Client:
    return Client()


def post(client: Client, path: str, body: Any = None, **headers: str) -> Any:
    if body is None:  # as fetch() sends it: no body, no Content-Type
        return client.generic("POST", path, headers=headers)
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


def refresh_cookie(response: Any) -> Morsel[str]:
    assert COOKIE in response.cookies, f"no {COOKIE} cookie set: {dict(response.cookies)}"
    return response.cookies[COOKIE]


def with_cookie(value: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    jar[COOKIE] = value
    return {"Cookie": jar.output(header="", sep=";").strip()}


def password_login(client: Client, **headers: str) -> Any:
    return post(
        client, "/api/token", {"username": "alice", "password": "alice-password"}, **headers
    )


def email_login(client: Client, **headers: str) -> Any:
    return post(
        client,
        "/auth/login",
        {"email": "alice@example.com", "password": "alice-password"},
        **headers,
    )


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == code


# -- body mode (the default) ---------------------------------------------------------------


def test_body_mode_is_the_default_and_sets_no_cookie(client: Client, user: Any) -> None:
    assert settings.DJANGO_TOKENS.get("REFRESH_COOKIE_SERVICES", []) == []
    response = password_login(client, Origin=FRONT_END)
    assert set(response.json()) == PASSWORD_KEYS
    assert COOKIE not in response.cookies
    login = email_login(client)
    assert set(login.json()) == KEYCLOAK_KEYS
    assert COOKIE not in login.cookies


def test_body_mode_ignores_a_refresh_cookie(client: Client, user: Any) -> None:
    token = password_login(client).json()["refresh_token"]
    response = post(client, "/api/token/refresh", **with_cookie(token), Origin=FRONT_END)
    assert_error(response, 400, "invalid_request")
    # The token was not consumed: it still refreshes from the body.
    assert post(client, "/api/token/refresh", {"refresh_token": token}).status_code == 200


# -- the cookie --------------------------------------------------------------------------


def test_password_login_sets_the_refresh_cookie_instead_of_the_body_field(
    client: Client, user: Any
) -> None:
    with cookie_mode("password"):
        response = password_login(client, Origin=FRONT_END)
    assert response.status_code == 200
    assert set(response.json()) == PASSWORD_KEYS - {"refresh_token"}
    cookie = refresh_cookie(response)
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/token/refresh"
    assert not cookie["domain"]
    lifetime = settings.DJANGO_TOKENS.get("REFRESH_TOKEN_LIFETIME", 14 * 24 * 3600)
    assert lifetime - 5 <= int(cookie["max-age"]) <= lifetime
    assert len(cookie.value) >= 43
    assert response["Cache-Control"] == "no-store"


def test_email_login_sets_the_cookie_and_api_key_exchange_keeps_the_body(
    client: Client, user: Any
) -> None:
    issued = api_keys.issue(user, name="script")
    with cookie_mode("api_key"):
        login = email_login(client, Origin=FRONT_END)
        exchange = obtain(client, issued)
    assert set(login.json()) == KEYCLOAK_KEYS - {"refresh_token"}
    cookie = refresh_cookie(login)
    assert cookie["path"] == "/auth/refresh"
    assert (cookie["httponly"], cookie["secure"], cookie["samesite"]) == (True, True, "Strict")
    assert int(cookie["max-age"]) == pytest.approx(login.json()["refresh_expires_in"], abs=2)
    # A script's API-key exchange answers in the body, cookie mode or not.
    assert set(exchange) == KEYCLOAK_KEYS


def test_the_mode_is_per_service(client: Client, user: Any) -> None:
    with cookie_mode("api_key"):
        assert set(password_login(client).json()) == PASSWORD_KEYS
        assert COOKIE in email_login(client).cookies


@pytest.mark.parametrize(
    ("service", "login", "path", "keys"),
    [
        ("password", password_login, "/api/token/refresh", PASSWORD_KEYS),
        ("api_key", email_login, "/auth/refresh", KEYCLOAK_KEYS),
    ],
)
def test_refresh_reads_the_cookie_and_rotates_it(
    client: Client, user: Any, service: str, login: Any, path: str, keys: set[str]
) -> None:
    with cookie_mode(service):
        first = refresh_cookie(login(client, Origin=FRONT_END)).value
        response = post(client, path, **with_cookie(first), Origin=FRONT_END)
        assert response.status_code == 200, response.content
        assert set(response.json()) == keys - {"refresh_token"}
        second = refresh_cookie(response).value
        assert second != first
        assert refresh_cookie(response)["path"] == path
        # The rotated cookie works once more; the new access token is a live one.
        again = post(client, path, **with_cookie(second), Origin=FRONT_END)
        assert again.status_code == 200
        me = client.get(
            "/api/me", headers={"Authorization": f"Bearer {again.json()['access_token']}"}
        )
        assert me.status_code == 200


def test_an_old_cookie_after_the_grace_revokes_the_session_and_is_expired(
    client: Client, user: Any
) -> None:
    with cookie_mode("password"), time_machine.travel(timezone.now(), tick=False) as clock:
        first = refresh_cookie(password_login(client, Origin=FRONT_END)).value
        rotated = post(client, "/api/token/refresh", **with_cookie(first), Origin=FRONT_END)
        second = refresh_cookie(rotated).value
        clock.shift(60)
        replay = post(client, "/api/token/refresh", **with_cookie(first), Origin=FRONT_END)
        assert_error(replay, 401, "invalid_grant")
        cleared = refresh_cookie(replay)
        assert cleared.value == ""
        assert int(cleared["max-age"]) == 0
        assert cleared["path"] == "/api/token/refresh"
        # Reuse revoked the whole session: the newest cookie is dead too.
        dead = post(client, "/api/token/refresh", **with_cookie(second), Origin=FRONT_END)
        assert_error(dead, 401, "invalid_grant")
    assert Session.objects.get().revoke_reason == "refresh_token_reused"


def test_a_body_refresh_token_is_answered_in_the_body_in_cookie_mode(
    client: Client, user: Any
) -> None:
    issued = api_keys.issue(user, name="script")
    with cookie_mode("api_key"):
        tokens = obtain(client, issued)
        response = post(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200
    assert set(response.json()) == KEYCLOAK_KEYS
    assert COOKIE not in response.cookies


def test_refresh_without_cookie_or_body_keeps_each_services_error(
    client: Client, user: Any
) -> None:
    with cookie_mode("password", "api_key"):
        assert_error(post(client, "/api/token/refresh", Origin=FRONT_END), 400, "invalid_request")
        assert_error(post(client, "/auth/refresh", Origin=FRONT_END), 401, "invalid_grant")


# -- the Origin check ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "https://evil.example",
        OTHER_PORT,  # same site, other origin: SameSite=Strict lets the cookie through
        "http://127.0.0.1:8001.evil.example",
        "null",
        "https://127.0.0.1:8001",  # the listed host, another scheme
        "not a url",
    ],
)
def test_the_cookie_is_refused_from_an_untrusted_origin(
    client: Client, user: Any, origin: str | None
) -> None:
    headers = {} if origin is None else {"Origin": origin}
    with cookie_mode("password"):
        token = refresh_cookie(password_login(client, Origin=FRONT_END)).value
        refused = post(client, "/api/token/refresh", **with_cookie(token), **headers)
        assert_error(refused, 403, "origin_not_allowed")
        assert COOKIE not in refused.cookies
        # Nothing was consumed: the cookie still refreshes from the front end.
        ok = post(client, "/api/token/refresh", **with_cookie(token), Origin=FRONT_END)
        assert ok.status_code == 200


def test_a_cross_site_form_post_is_refused_before_its_body_is_read(
    client: Client, user: Any
) -> None:
    with cookie_mode("password"):
        token = refresh_cookie(password_login(client, Origin=FRONT_END)).value
        response = client.post(
            "/api/token/refresh",
            "refresh_token=x",
            content_type="application/x-www-form-urlencoded",
            headers={**with_cookie(token), "Origin": OTHER_PORT},
        )
    assert_error(response, 403, "origin_not_allowed")


@pytest.mark.parametrize(
    ("origin", "extra"),
    [
        ("http://testserver", {}),  # the API's own origin
        ("http://testserver:80", {}),
        ("https://app.example.com", {"CSRF_TRUSTED_ORIGINS": ["https://*.example.com"]}),
        ("https://example.com", {"CSRF_TRUSTED_ORIGINS": ["https://*.example.com"]}),
        ("http://front.test:3000", {"CSRF_TRUSTED_ORIGINS": ["http://front.test:3000"]}),
    ],
)
def test_own_and_trusted_origins_are_accepted(
    client: Client, user: Any, origin: str, extra: dict[str, Any]
) -> None:
    with cookie_mode("password", **extra):
        token = refresh_cookie(password_login(client, Origin=FRONT_END)).value
        response = post(client, "/api/token/refresh", **with_cookie(token), Origin=origin)
    assert response.status_code == 200, response.content


def test_a_wildcard_does_not_trust_another_scheme(client: Client, user: Any) -> None:
    with cookie_mode("password", CSRF_TRUSTED_ORIGINS=["https://*.example.com"]):
        token = refresh_cookie(password_login(client, Origin=FRONT_END)).value
        response = post(
            client, "/api/token/refresh", **with_cookie(token), Origin="http://app.example.com"
        )
    assert_error(response, 403, "origin_not_allowed")


def test_a_login_from_an_untrusted_origin_sets_no_cookie(client: Client, user: Any) -> None:
    with cookie_mode("password", "api_key"):
        assert_error(password_login(client, Origin=OTHER_PORT), 403, "origin_not_allowed")
        assert_error(email_login(client, Origin="https://evil.example"), 403, "origin_not_allowed")
        # Scripts send no Origin: they log in as before.
        assert password_login(client).status_code == 200
    assert Session.objects.count() == 1


# -- logout --------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("service", "login", "refresh_path", "logout_path"),
    [
        ("password", password_login, "/api/token/refresh", "/api/token/logout"),
        ("api_key", email_login, "/auth/refresh", "/auth/logout"),
    ],
)
def test_logout_revokes_the_session_and_expires_the_cookie(
    client: Client,
    user: Any,
    service: str,
    login: Any,
    refresh_path: str,
    logout_path: str,
) -> None:
    with cookie_mode(service):
        response = login(client, Origin=FRONT_END)
        access, cookie = response.json()["access_token"], refresh_cookie(response).value
        out = post(client, logout_path, **bearer(access), Origin=FRONT_END)
        assert out.status_code == 204
        assert out.content == b""
        cleared = refresh_cookie(out)
        assert (cleared.value, int(cleared["max-age"]), cleared["path"]) == ("", 0, refresh_path)
        assert "1970" in cleared["expires"]
        # The cookie, replayed after logout, is refused; so is the access token.
        assert_error(
            post(client, refresh_path, **with_cookie(cookie), Origin=FRONT_END),
            401,
            "invalid_grant",
        )
        assert client.get("/api/me", headers=bearer(access)).status_code == 401
        again = post(client, logout_path, **bearer(access))
        assert_error(again, 401, "invalid_token")
    session = Session.objects.get()
    assert session.revoke_reason == "logout"
    event = AuditEvent.objects.get(action=Action.SESSION_REVOKED)
    assert (event.actor, str(event.session_id), event.detail["reason"]) == (
        "alice",
        str(session.pk),
        "logout",
    )


def test_logout_in_body_mode_revokes_and_sets_no_cookie(client: Client, user: Any) -> None:
    tokens = password_login(client).json()
    out = post(client, "/api/token/logout", **bearer(tokens["access_token"]))
    assert out.status_code == 204
    assert COOKIE not in out.cookies
    refused = post(client, "/api/token/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_error(refused, 401, "invalid_grant")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic YWxpY2U6eA==", "Bearer a b c"],
)
def test_logout_without_a_valid_access_token_is_a_json_401(
    client: Client, user: Any, authorization: str | None
) -> None:
    password_login(client)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = post(client, "/api/token/logout", **headers)
    assert_error(response, 401, "invalid_token")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert Session.objects.get().revoked_at is None


def test_logout_refuses_a_token_of_another_service(client: Client, user: Any) -> None:
    keycloak = email_login(client).json()
    response = post(client, "/api/token/logout", **bearer(keycloak["access_token"]))
    assert_error(response, 401, "invalid_token")
    assert Session.objects.get().revoked_at is None
    # ... and its id token, which is no access token at all.
    response = post(client, "/auth/logout", **bearer(keycloak["id_token"]))
    assert_error(response, 401, "invalid_token")


def test_logout_answers_other_methods_in_json(client: Client) -> None:
    response = client.get("/api/token/logout")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


# -- CORS (django-cors-headers) ------------------------------------------------------------


def preflight(client: Client, path: str, origin: str, headers: str = "content-type") -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/token",
        "/api/token/refresh",
        "/api/token/logout",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/oauth2/token",
        "/api/me",
    ],
)
def test_listed_origins_get_a_credentialed_cors_grant(client: Client, path: str) -> None:
    with cookie_mode("password"):
        response = preflight(client, path, FRONT_END, "authorization, content-type")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONT_END
    assert response["Access-Control-Allow-Credentials"] == "true"
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("origin", [OTHER_PORT, "https://evil.example", "null"])
def test_an_unlisted_origin_gets_no_cors_grant(client: Client, user: Any, origin: str) -> None:
    with cookie_mode("password"):
        response = preflight(client, "/api/token", origin)
        assert "Access-Control-Allow-Origin" not in response
        assert "Access-Control-Allow-Credentials" not in response
        actual = password_login(client, Origin=origin)
    assert "Access-Control-Allow-Origin" not in actual


def test_the_answer_itself_carries_the_grant_for_a_listed_origin(client: Client, user: Any) -> None:
    with cookie_mode("password"):
        response = password_login(client, Origin=FRONT_END)
    assert response["Access-Control-Allow-Origin"] == FRONT_END
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "origin" in response["Vary"].lower()


def test_the_admin_is_outside_the_cors_urls(client: Client) -> None:
    with cookie_mode("password"):
        response = client.get("/admin/login/", headers={"Origin": FRONT_END})
    assert "Access-Control-Allow-Origin" not in response


# -- system checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message_id"),
    [
        ({"REFRESH_COOKIE_SERVICES": ["oauth2"]}, "django_tokens.E012"),
        ({"REFRESH_COOKIE_SERVICES": "password"}, "django_tokens.E012"),
        ({"REFRESH_COOKIE_NAME": "refresh token"}, "django_tokens.E013"),
        ({"REFRESH_COOKIE_NAME": ""}, "django_tokens.E013"),
    ],
)
def test_bad_cookie_settings_fail_the_checks(overrides: dict[str, Any], message_id: str) -> None:
    with (
        override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides}),
        pytest.raises(SystemCheckError, match=message_id),
    ):
        call_command("check")


def test_cookie_mode_without_cors_credentials_warns(capsys: pytest.CaptureFixture[str]) -> None:
    with cookie_mode("password", CORS_ALLOW_CREDENTIALS=False):
        call_command("check")
    assert "django_tokens.W006" in capsys.readouterr().err
    with cookie_mode("password"):
        call_command("check")
    assert "W006" not in capsys.readouterr().err


# -- the demo front end ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "needle"),
    [
        ("/demo/", "text/html", b'<script src="demo.js" defer>'),
        ("/demo/demo.js", "text/javascript", b"/api/token/refresh"),
        ("/demo/demo.css", "text/css", b"#status"),
    ],
)
def test_the_demo_front_end_is_served_with_a_strict_policy(
    client: Client, path: str, content_type: str, needle: bytes
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert needle in b"".join(response.streaming_content)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_the_demo_serves_nothing_else(client: Client) -> None:
    assert client.get("/demo/settings.py").status_code == 404
    assert client.get("/demo/../settings.py").status_code == 404
