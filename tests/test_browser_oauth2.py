"""The OAuth 2.0 authorization-code flow (seed 002) in a real browser.

Debian's Chromium, driven by Playwright, goes through ``GET /oauth2/authorize`` as a person
would: the sign-in page, the consent page, and back to the client's ``redirect_uri``. The
client side is played by ``requests``: it keeps the PKCE verifier, state and nonce, redeems
the code at ``POST /oauth2/token``, verifies the ID token with PyJWT's ``PyJWKClient``
against the served JWKS, refreshes, revokes, and presents the tokens to ``GET /api/me``.

Chromium is expected at ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run``
installs it). Without it these tests fail, unless ``DJANGO_TOKENS_SKIP_BROWSER=1`` asks for
them to be skipped (see ``tests/browser.py``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from oauth2_provider.models import Application

from django_tokens.conf import token_settings
from tests.browser import (
    CLOSE,
    SKIP_IF_ASKED,
    assert_accessible_basics,
    browser_fixture,  # noqa: F401 (a fixture: pytest finds it here)
    fresh_page,
    issuer_fixture,  # noqa: F401 (a fixture)
    submit,
)

with contextlib.suppress(ImportError):  # reported by the ``browser`` fixture
    from playwright.sync_api import Browser, Page, expect

APP_NAME = "Acme Photo Printer"
CONSENT_HEADING = f"Allow {APP_NAME} to access your account?"
SCOPE = "openid profile email read"
AUDIENCE = "django-tokens"
TOKEN_KEYS = {"access_token", "refresh_token", "id_token", "expires_in", "scope", "token_type"}
#: Django's AuthenticationForm message for a wrong username or password.
INVALID_LOGIN = (
    "Please enter a correct username and password. Note that both fields may be case-sensitive."
)

pytestmark = SKIP_IF_ASKED


# -- the client's side ------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class AuthorizationRequest:
    """One ``GET /oauth2/authorize`` and the values the client keeps to check its outcome."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def authorization_request(base_url: str, client_id: str, redirect_uri: str) -> AuthorizationRequest:
    """An authorization request with a fresh PKCE pair (RFC 7636, S256), state and nonce."""
    code_verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-]
    code_challenge = b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())
    state = secrets.token_urlsafe(16)
    nonce = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return AuthorizationRequest(f"{base_url}/oauth2/authorize?{query}", state, nonce, code_verifier)


def post_form(url: str, data: dict[str, str]) -> requests.Response:
    return requests.post(url, data=data, headers=CLOSE, timeout=10)


def get_me(base_url: str, access_token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}", **CLOSE}
    return requests.get(f"{base_url}/api/me", headers=headers, timeout=10)


def token_body(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == TOKEN_KEYS, body
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"].split() == SCOPE.split()
    return body


# -- the browser's side -----------------------------------------------------------------------


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    submit(page, "Sign in", "/oauth2/login")


def assert_on_login_page(page: Page) -> None:
    assert urlsplit(page.url).path == "/oauth2/login", page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def callback_query(page: Page, redirect_uri: str) -> dict[str, str]:
    """Wait for the browser to reach the client's ``redirect_uri``; its query parameters.
    (Nothing is served there: the page itself is the live server's 404.)"""
    page.wait_for_url(lambda url: url.split("?", 1)[0] == redirect_uri)
    query = parse_qs(urlsplit(page.url).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in query.values()), page.url
    return {name: values[0] for name, values in query.items()}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def page(user: Any, public_client: Application, issuer: str, browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies), opened once the user and the client exist."""
    with fresh_page(browser) as page:
        yield page


@pytest.fixture
def redirect_uri(live_server: Any) -> str:
    return f"{live_server.url}/callback"


@pytest.fixture
def public_client(redirect_uri: str) -> Application:
    """A public client (no secret: a single-page or native app) using the code grant."""
    return Application.objects.create(
        name=APP_NAME,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        skip_authorization=False,
    )


@pytest.fixture
def new_authorization(
    issuer: str, public_client: Application, redirect_uri: str
) -> Callable[[], AuthorizationRequest]:
    return lambda: authorization_request(issuer, public_client.client_id, redirect_uri)


# -- tests ------------------------------------------------------------------------------------


def test_allow_then_redeem_refresh_and_revoke(
    page: Page,
    tmp_path: Path,
    issuer: str,
    user: Any,
    password_credentials: dict[str, str],
    public_client: Application,
    redirect_uri: str,
    new_authorization: Callable[[], AuthorizationRequest],
) -> None:
    client_id = public_client.client_id
    request = new_authorization()

    page.goto(request.url)

    assert_on_login_page(page)
    assert parse_qs(urlsplit(page.url).query)["next"] == [request.url.removeprefix(issuer)]
    assert_accessible_basics(page)

    sign_in(page, password_credentials["username"], password_credentials["password"])

    expect(page.get_by_role("heading", level=1)).to_have_text(CONSENT_HEADING)
    assert urlsplit(page.url).path == "/oauth2/authorize", page.url
    expect(page.get_by_text(f"Signed in as {user.username}.")).to_be_visible()
    descriptions = [token_settings.OAUTH2_SCOPES[scope] for scope in SCOPE.split()]
    scope_list = page.get_by_role("list", name=f"{APP_NAME} will be able to:")
    expect(scope_list.get_by_role("listitem")).to_have_text(descriptions)
    assert_accessible_basics(page)
    page.screenshot(path=tmp_path / "consent.png", full_page=True)

    submit(page, "Allow", "/oauth2/authorize")

    query = callback_query(page, redirect_uri)
    assert set(query) == {"code", "state"}, query
    assert query["state"] == request.state

    token_url = f"{issuer}/oauth2/token"
    tokens = token_body(
        post_form(
            token_url,
            {
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": request.code_verifier,
            },
        )
    )

    jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json", headers=CLOSE)
    id_token = tokens["id_token"]
    id_claims = jwt.decode(
        id_token,
        jwks.get_signing_key_from_jwt(id_token).key,
        algorithms=["RS256"],
        audience=client_id,
        issuer=issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "nonce"]},
    )
    assert id_claims["sub"] == str(user.pk)
    assert id_claims["nonce"] == request.nonce
    assert id_claims["email"] == user.email
    assert id_claims["preferred_username"] == user.username

    access_token = tokens["access_token"]
    access_claims = jwt.decode(
        access_token,
        jwks.get_signing_key_from_jwt(access_token).key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=issuer,
    )
    assert access_claims["sub"] == str(user.pk)
    assert access_claims["client_id"] == client_id
    me = get_me(issuer, access_token)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == user.username
    assert me.json()["client_id"] == client_id

    refresh_form = {"grant_type": "refresh_token", "client_id": client_id}
    refreshed = token_body(
        post_form(token_url, {**refresh_form, "refresh_token": tokens["refresh_token"]})
    )
    assert refreshed["access_token"] != access_token
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert get_me(issuer, refreshed["access_token"]).status_code == 200

    revoked = post_form(
        f"{issuer}/oauth2/revoke", {"token": refreshed["access_token"], "client_id": client_id}
    )

    assert revoked.status_code == 200, revoked.text
    assert get_me(issuer, refreshed["access_token"]).status_code == 401
    again = post_form(token_url, {**refresh_form, "refresh_token": refreshed["refresh_token"]})
    assert again.status_code == 400, again.text
    assert again.json()["error"] == "invalid_grant"
    assert get_me(issuer, access_token).status_code == 401


def test_deny_sends_access_denied_to_the_client(
    page: Page,
    password_credentials: dict[str, str],
    redirect_uri: str,
    new_authorization: Callable[[], AuthorizationRequest],
) -> None:
    request = new_authorization()
    page.goto(request.url)
    sign_in(page, password_credentials["username"], password_credentials["password"])
    expect(page.get_by_role("heading", level=1)).to_have_text(CONSENT_HEADING)

    submit(page, "Deny", "/oauth2/authorize")

    query = callback_query(page, redirect_uri)
    assert query["error"] == "access_denied", query
    assert query["state"] == request.state
    assert "code" not in query


def test_wrong_password_shows_an_alert_on_the_login_page(
    page: Page,
    password_credentials: dict[str, str],
    new_authorization: Callable[[], AuthorizationRequest],
) -> None:
    page.goto(new_authorization().url)

    sign_in(page, password_credentials["username"], "not-the-password")

    alert = page.get_by_role("alert")
    expect(alert).to_have_text(INVALID_LOGIN)
    assert_on_login_page(page)
    assert_accessible_basics(page)
    username = page.get_by_label("Username")
    expect(username).to_have_value(password_credentials["username"])
    expect(username).to_have_accessible_description(INVALID_LOGIN)
    expect(page.get_by_label("Password")).to_have_value("")

    # The sign-in page still knows where to go next: the right password reaches consent.
    sign_in(page, password_credentials["username"], password_credentials["password"])

    expect(page.get_by_role("heading", level=1)).to_have_text(CONSENT_HEADING)
