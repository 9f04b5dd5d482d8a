"""The OAuth 2.0 endpoints around the token endpoint (SPEC §3): revocation (RFC 7009),
introspection (RFC 7662), userinfo (OIDC Core §5.3), the discovery documents (RFC 8414,
OpenID Connect Discovery 1.0), and the login and consent pages of the browser flow.

User tokens come from the authorization-code flow with PKCE, run through the Django test
client (a signed-in browser that allows the consent page) or, against ``live_server``,
through ``requests`` from the login page on. Clients are django-oauth-toolkit applications
made with its ``createapplication`` command. Discovery documents are checked with Authlib's
metadata validators and by calling every endpoint they list.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import jwt
import pytest
import requests
import time_machine
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.test import Client, override_settings
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from django_tokens import sessions
from django_tokens.conf import token_settings
from django_tokens.models import SigningKey, UserMetadata
from tests.test_oauth2_token import (
    CLOSE,
    OAuthClient,
    basic,
    create_application,
    envelope,
    me,
    printed_secret,
    unverified_claims,
)

REDIRECT_URI = "https://client.example.com/callback"
REVOKE_PATHS = ["/oauth2/revoke", "/oauth2/revoke/"]
INTROSPECT_PATHS = ["/oauth2/introspect", "/oauth2/introspect/"]
USERINFO_PATHS = ["/oauth2/userinfo", "/oauth2/userinfo/"]
DISCOVERY_PATHS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
USER_SCOPE = "openid profile email"
ISSUER = "http://testserver"
AUDIENCE = "django-tokens"
INACTIVE = {"active": False}
ACCESS_TOKEN_FIELDS = {
    "active",
    "token_type",
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "username",
}
THREE_GRANTS = ["authorization_code", "client_credentials", "refresh_token"]
INVALID_TOKEN_MESSAGE = "The access token is missing, invalid, expired or revoked."
NO_OPENID_MESSAGE = "The access token lacks the 'openid' scope."
BAD_LOGIN_TEXT = "Please enter a correct username and password."
THROTTLED_LOGIN_TEXT = re.compile(r"Too many failed sign-ins\. Try again in (\d+) seconds\.")
#: The start of a throttle window (a multiple of 300 and 60 seconds since the epoch), so
#: that a throttle test never straddles two windows.
WINDOW_START = datetime(2031, 3, 4, 5, 0, 0, tzinfo=UTC)


# -- clients and the authorization-code flow ------------------------------------------------


def web_client(name: str) -> OAuthClient:
    """A confidential authorization-code client with a generated secret."""
    application, output = create_application(
        "confidential", "authorization-code", f"--name={name}", f"--redirect-uris={REDIRECT_URI}"
    )
    return OAuthClient(application.client_id, printed_secret(output), application)


@pytest.fixture
def web_app() -> OAuthClient:
    return web_client("Photo Printer")


@pytest.fixture
def other_web_app() -> OAuthClient:
    return web_client("Calendar Sync")


@pytest.fixture
def mobile_app() -> OAuthClient:
    """A public client: no secret, identified by its client_id alone."""
    application, _ = create_application(
        "public", "authorization-code", "--name=Pocket App", f"--redirect-uris={REDIRECT_URI}"
    )
    return OAuthClient(application.client_id, "", application)


def is_public(app: OAuthClient) -> bool:
    return app.application.client_type == "public"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """RFC 7636: a code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def authorize_params(app: OAuthClient, scope: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def code_from(location: str, state: str) -> str:
    """The authorization code of a redirect to the client, after checking its ``state``."""
    assert location.startswith(REDIRECT_URI + "?"), location
    query = parse_qs(urlparse(location).query)
    assert query["state"] == [state]
    (code,) = query["code"]
    return code


def authorization_code(
    user: Any, app: OAuthClient, scope: str = USER_SCOPE, **extra: str
) -> tuple[str, str]:
    """A signed-in browser that sees the consent page and allows it: the code and verifier."""
    browser = Client()
    browser.force_login(user)
    verifier, challenge = pkce_pair()
    params = authorize_params(app, scope, challenge, **extra)
    page = browser.get("/oauth2/authorize", params)
    assert page.status_code == 200, page.content
    response = browser.post("/oauth2/authorize", {**params, "allow": "on"})
    assert response.status_code == 302, response.content
    return code_from(response["Location"], params["state"]), verifier


def token_request(client: Client, app: OAuthClient, fields: dict[str, str]) -> Any:
    """``POST /oauth2/token``: a public client names itself in the form, a confidential one
    authenticates with HTTP Basic."""
    if is_public(app):
        return client.post("/oauth2/token", {**fields, "client_id": app.client_id})
    return client.post("/oauth2/token", fields, HTTP_AUTHORIZATION=basic(app.client_id, app.secret))


def obtain_tokens(
    client: Client, user: Any, app: OAuthClient, scope: str = USER_SCOPE, **extra: str
) -> dict[str, Any]:
    code, verifier = authorization_code(user, app, scope, **extra)
    response = token_request(
        client,
        app,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == scope
    return body


def refresh(client: Client, app: OAuthClient, refresh_token: str) -> Any:
    return token_request(
        client, app, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def client_auth(app: OAuthClient, auth: str) -> tuple[dict[str, str], dict[str, str]]:
    """Form fields and request headers for one way of identifying ``app``: ``basic`` and
    ``form`` (client_secret_basic / client_secret_post), ``client_id`` (a public client),
    ``none``."""
    if auth == "basic":
        return {}, {"HTTP_AUTHORIZATION": basic(app.client_id, app.secret)}
    if auth == "form":
        return {"client_id": app.client_id, "client_secret": app.secret}, {}
    if auth == "client_id":
        return {"client_id": app.client_id}, {}
    assert auth == "none"
    return {}, {}


def form_post(
    client: Client,
    path: str,
    app: OAuthClient,
    fields: dict[str, str],
    auth: str = "basic",
) -> Any:
    extra_fields, headers = client_auth(app, auth)
    return client.post(path, {**fields, **extra_fields}, **headers)


def revoke(
    client: Client,
    app: OAuthClient,
    token: str,
    hint: str | None = None,
    *,
    path: str = REVOKE_PATHS[0],
    auth: str | None = None,
) -> Any:
    fields = {"token": token}
    if hint is not None:
        fields["token_type_hint"] = hint
    auth = auth or ("client_id" if is_public(app) else "basic")
    return form_post(client, path, app, fields, auth)


def introspect(
    client: Client,
    app: OAuthClient,
    token: str,
    hint: str | None = None,
    *,
    path: str = INTROSPECT_PATHS[0],
    auth: str = "basic",
) -> Any:
    fields = {"token": token}
    if hint is not None:
        fields["token_type_hint"] = hint
    return form_post(client, path, app, fields, auth)


def introspection(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def userinfo(
    client: Client, token: str | None, method: str = "get", path: str = USERINFO_PATHS[0]
) -> Any:
    headers = bearer(token) if token is not None else {}
    return getattr(client, method)(path, headers=headers)


def assert_envelope(
    response: Any, status: int, code: str, description: str | None = None
) -> dict[str, Any]:
    """An error in both envelopes: RFC 6749's ``error``/``error_description`` and the seed's
    ``meta``/``errors``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    description = body.get("error_description") if description is None else description
    assert isinstance(description, str)
    assert description
    assert body == envelope(code, description, status)
    return body


def assert_no_store(response: Any) -> None:
    assert response["Cache-Control"] == "no-store"


def assert_invalid_client(response: Any, description: str) -> None:
    assert_envelope(response, 401, "invalid_client", description)
    assert_no_store(response)
    assert response["WWW-Authenticate"].startswith("Basic ")


def assert_never_cached(response: Any) -> None:
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private"} <= cache_control, response["Cache-Control"]


def grant_is_dead(client: Client, app: OAuthClient, tokens: dict[str, Any]) -> None:
    """Neither token of a grant is active any more, and its refresh token cannot refresh.
    (``GET /api/me`` refuses the access token through a mark written when the revocation
    commits: the transactional tests check that.)"""
    assert introspection(introspect(client, app, tokens["access_token"])) == INACTIVE
    assert introspection(introspect(client, app, tokens["refresh_token"])) == INACTIVE
    assert userinfo(client, tokens["access_token"]).status_code == 401
    assert_envelope(refresh(client, app, tokens["refresh_token"]), 400, "invalid_grant")


def grant_is_alive(client: Client, app: OAuthClient, tokens: dict[str, Any]) -> None:
    """Both tokens are active, the access token is accepted, and the refresh token refreshes
    (which rotates it: call this last)."""
    assert introspection(introspect(client, app, tokens["access_token"]))["active"] is True
    assert introspection(introspect(client, app, tokens["refresh_token"]))["active"] is True
    assert me(client, tokens["access_token"]).status_code == 200
    assert userinfo(client, tokens["access_token"]).status_code == 200
    assert refresh(client, app, tokens["refresh_token"]).status_code == 200


def password_tokens(client: Client, credentials: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/token", json.dumps(credentials), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def tokens_config(**overrides: Any) -> override_settings:
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


class PageParser(HTMLParser):
    """The inputs (with their attributes), labels (``for`` -> text) and forms of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str]] = []
        self.labels: dict[str, str] = {}
        self.forms: list[dict[str, str]] = []
        self._label_for: str | None = None
        self._text: list[str] = []
        self.list_items: list[str] = []
        self._in_li = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "input":
            self.inputs.append(attributes)
        elif tag == "form":
            self.forms.append(attributes)
        elif tag == "label":
            self._label_for = attributes.get("for", "")
            self._text = []
        elif tag == "li":
            self._in_li = True
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._label_for is not None:
            self.labels[self._label_for] = "".join(self._text).strip()
            self._label_for = None
        elif tag == "li" and self._in_li:
            self.list_items.append("".join(self._text).strip())
            self._in_li = False

    def handle_data(self, data: str) -> None:
        if self._label_for is not None or self._in_li:
            self._text.append(data)

    def input(self, name: str) -> dict[str, str]:
        (found,) = [field for field in self.inputs if field.get("name") == name]
        return found

    def hidden_fields(self) -> dict[str, str]:
        return {
            field["name"]: field.get("value", "")
            for field in self.inputs
            if field.get("type") == "hidden" and field.get("name")
        }


def parse_page(html: str | bytes) -> PageParser:
    parser = PageParser()
    parser.feed(html.decode() if isinstance(html, bytes) else html)
    return parser


# -- POST /oauth2/revoke (RFC 7009) ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", REVOKE_PATHS)
def test_revoking_an_access_token_ends_it_and_its_refresh_token(
    client: Client, user: Any, web_app: OAuthClient, path: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    assert me(client, tokens["access_token"]).status_code == 200

    response = revoke(client, web_app, tokens["access_token"], "access_token", path=path)

    assert response.status_code == 200, response.content
    assert response.content == b""
    assert_no_store(response)
    assert me(client, tokens["access_token"]).status_code == 401
    grant_is_dead(client, web_app, tokens)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", REVOKE_PATHS)
def test_revoking_a_refresh_token_ends_it_and_its_access_token(
    client: Client, user: Any, web_app: OAuthClient, path: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = revoke(client, web_app, tokens["refresh_token"], "refresh_token", path=path)

    assert response.status_code == 200, response.content
    assert response.content == b""
    refused = refresh(client, web_app, tokens["refresh_token"])
    assert_envelope(refused, 400, "invalid_grant", "Invalid grant")
    assert_no_store(refused)
    assert me(client, tokens["access_token"]).status_code == 401
    grant_is_dead(client, web_app, tokens)


@pytest.mark.django_db
@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "id_token", "bogus"])
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_either_token_is_revoked_whatever_the_hint_says(
    client: Client, user: Any, web_app: OAuthClient, kind: str, hint: str | None
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = revoke(client, web_app, tokens[kind], hint)

    assert response.status_code == 200, response.content
    grant_is_dead(client, web_app, tokens)


@pytest.mark.django_db
def test_revoking_one_grant_leaves_the_users_other_grants_alone(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    first = obtain_tokens(client, user, web_app)
    second = obtain_tokens(client, user, web_app)

    assert revoke(client, web_app, first["refresh_token"]).status_code == 200

    grant_is_dead(client, web_app, first)
    grant_is_alive(client, web_app, second)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token",
    ["not-a-token-this-server-issued", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "x" * 10_000],
    ids=["opaque", "jwt-shaped", "over-long"],
)
def test_unknown_token_is_200_and_changes_nothing(
    client: Client, user: Any, web_app: OAuthClient, token: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = revoke(client, web_app, token)

    assert response.status_code == 200, response.content
    assert response.content == b""
    grant_is_alive(client, web_app, tokens)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
@pytest.mark.parametrize("revoker", ["confidential", "public"])
def test_another_clients_token_is_200_but_stays_valid(
    client: Client,
    user: Any,
    web_app: OAuthClient,
    other_web_app: OAuthClient,
    mobile_app: OAuthClient,
    kind: str,
    revoker: str,
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    stranger = other_web_app if revoker == "confidential" else mobile_app

    response = revoke(client, stranger, tokens[kind], kind)

    assert response.status_code == 200, response.content
    grant_is_alive(client, web_app, tokens)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_public_client_revokes_its_token_with_its_client_id_only(
    client: Client, user: Any, mobile_app: OAuthClient, web_app: OAuthClient, kind: str
) -> None:
    tokens = obtain_tokens(client, user, mobile_app)
    assert userinfo(client, tokens["access_token"]).status_code == 200

    response = revoke(client, mobile_app, tokens[kind], auth="client_id")

    assert response.status_code == 200, response.content
    assert introspection(introspect(client, web_app, tokens["access_token"])) == INACTIVE
    assert introspection(introspect(client, web_app, tokens["refresh_token"])) == INACTIVE
    assert userinfo(client, tokens["access_token"]).status_code == 401
    assert_envelope(refresh(client, mobile_app, tokens["refresh_token"]), 400, "invalid_grant")


@pytest.mark.django_db
@pytest.mark.parametrize("path", REVOKE_PATHS)
@pytest.mark.parametrize("auth", ["basic", "form"])
def test_wrong_client_secret_is_invalid_client_and_revokes_nothing(
    client: Client, user: Any, web_app: OAuthClient, auth: str, path: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    impostor = OAuthClient(web_app.client_id, "x" * 128, web_app.application)

    response = revoke(client, impostor, tokens["refresh_token"], path=path, auth=auth)

    assert_invalid_client(response, "Invalid client")
    grant_is_alive(client, web_app, tokens)


@pytest.mark.django_db
def test_confidential_client_naming_itself_without_its_secret_is_invalid_client(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = revoke(client, web_app, tokens["access_token"], auth="client_id")

    assert_invalid_client(response, "Invalid client")
    grant_is_alive(client, web_app, tokens)


@pytest.mark.django_db
def test_no_client_identification_at_all_is_invalid_client(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = revoke(client, web_app, tokens["access_token"], auth="none")

    assert_invalid_client(response, "Invalid client")
    grant_is_alive(client, web_app, tokens)


@pytest.mark.django_db
@pytest.mark.parametrize("path", REVOKE_PATHS)
@pytest.mark.parametrize("fields", [{}, {"token": ""}], ids=["absent", "empty"])
def test_missing_token_is_invalid_request(
    client: Client, web_app: OAuthClient, path: str, fields: dict[str, str]
) -> None:
    response = form_post(client, path, web_app, fields)

    assert_envelope(response, 400, "invalid_request")
    assert_no_store(response)


@pytest.mark.django_db
@pytest.mark.parametrize("path", REVOKE_PATHS)
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_revoke_other_methods_are_405_json_with_allow_post(
    client: Client, web_app: OAuthClient, method: str, path: str
) -> None:
    response = getattr(client, method)(
        path, HTTP_AUTHORIZATION=basic(web_app.client_id, web_app.secret)
    )

    assert_envelope(response, 405, "invalid_request", "Use POST.")
    assert response["Allow"] == "POST"


@pytest.mark.django_db
def test_revoke_json_body_is_a_json_400_and_revokes_nothing(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = client.post(
        "/oauth2/revoke",
        json.dumps({"token": tokens["access_token"], "token_type_hint": "access_token"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(web_app.client_id, web_app.secret),
    )

    assert_envelope(response, 400, "invalid_request")
    grant_is_alive(client, web_app, tokens)


@pytest.mark.django_db
@pytest.mark.parametrize("path", REVOKE_PATHS)
@pytest.mark.parametrize("shape", ["one-huge-field", "too-many-fields"])
def test_revoke_oversized_body_is_invalid_request(
    client: Client, web_app: OAuthClient, path: str, shape: str
) -> None:
    if shape == "one-huge-field":
        fields = {"token": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    else:
        fields = {f"f{i}": "1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
        fields["token"] = "whatever"

    response = form_post(client, path, web_app, fields)

    assert_envelope(response, 400, "invalid_request", "The request body is too large.")
    assert_no_store(response)


@pytest.mark.django_db
def test_no_token_rows_outlive_a_revoked_grant(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    assert AccessToken.objects.count() == 1

    assert revoke(client, web_app, tokens["refresh_token"]).status_code == 200

    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


# -- POST /oauth2/introspect (RFC 7662) ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", INTROSPECT_PATHS)
def test_introspection_without_client_authentication_is_invalid_client(
    client: Client, user: Any, web_app: OAuthClient, path: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = introspect(client, web_app, tokens["access_token"], path=path, auth="none")

    assert_invalid_client(response, "Client authentication failed.")
    assert "active" not in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["basic", "form"])
def test_introspection_with_a_wrong_secret_is_invalid_client(
    client: Client, user: Any, web_app: OAuthClient, auth: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    impostor = OAuthClient(web_app.client_id, "x" * 128, web_app.application)

    response = introspect(client, impostor, tokens["access_token"], auth=auth)

    assert_invalid_client(response, "Client authentication failed.")


@pytest.mark.django_db
def test_introspection_is_not_open_to_a_public_client_naming_itself(
    client: Client, user: Any, mobile_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, mobile_app)

    response = introspect(client, mobile_app, tokens["access_token"], auth="client_id")

    assert_invalid_client(response, "Client authentication failed.")


@pytest.mark.django_db
def test_a_user_access_token_does_not_authorize_introspection(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = client.post(
        "/oauth2/introspect",
        {"token": tokens["access_token"]},
        headers=bearer(tokens["access_token"]),
    )

    assert_invalid_client(response, "Client authentication failed.")


@pytest.mark.django_db
@pytest.mark.parametrize("path", INTROSPECT_PATHS)
@pytest.mark.parametrize("auth", ["basic", "form"])
@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_active_access_token_is_described(
    client: Client, user: Any, web_app: OAuthClient, auth: str, path: str, hint: str | None
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    claims = unverified_claims(tokens["access_token"])

    body = introspection(
        introspect(client, web_app, tokens["access_token"], hint, path=path, auth=auth)
    )

    assert set(body) == ACCESS_TOKEN_FIELDS
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    assert body["scope"] == USER_SCOPE
    assert body["client_id"] == web_app.client_id
    assert body["sub"] == str(user.pk)
    assert body["username"] == "alice"
    assert body["aud"] == AUDIENCE
    assert body["iss"] == ISSUER
    assert body["exp"] - body["iat"] == tokens["expires_in"]
    assert {name: body[name] for name in ("exp", "iat", "jti")} == {
        name: claims[name] for name in ("exp", "iat", "jti")
    }


@pytest.mark.django_db
def test_another_client_may_introspect_a_token_it_was_not_issued(
    client: Client, user: Any, web_app: OAuthClient, other_web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    body = introspection(introspect(client, other_web_app, tokens["access_token"]))

    assert body["active"] is True
    assert body["client_id"] == web_app.client_id


@pytest.mark.django_db
@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
def test_active_refresh_token_is_described(
    client: Client, user: Any, web_app: OAuthClient, hint: str | None
) -> None:
    tokens = obtain_tokens(client, user, web_app, "openid profile")

    body = introspection(introspect(client, web_app, tokens["refresh_token"], hint))

    assert body["active"] is True, "RFC 7662 §2.1: a wrong hint must not hide the token"
    assert body["token_type"] == "refresh_token"
    assert body["scope"] == "openid profile"
    assert body["client_id"] == web_app.client_id
    assert body["sub"] == str(user.pk)
    assert body["username"] == "alice"
    assert isinstance(body["iat"], int)


@pytest.mark.django_db
def test_refreshed_grant_describes_the_new_tokens_and_not_the_old(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    old = obtain_tokens(client, user, web_app)
    response = refresh(client, web_app, old["refresh_token"])
    assert response.status_code == 200, response.content
    new = response.json()

    assert introspection(introspect(client, web_app, old["access_token"])) == INACTIVE
    assert introspection(introspect(client, web_app, old["refresh_token"])) == INACTIVE
    assert introspection(introspect(client, web_app, new["access_token"]))["active"] is True
    assert introspection(introspect(client, web_app, new["refresh_token"]))["active"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_revoked_tokens_are_inactive(
    client: Client, user: Any, web_app: OAuthClient, kind: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    assert revoke(client, web_app, tokens[kind]).status_code == 200

    for token in (tokens["access_token"], tokens["refresh_token"]):
        for hint in (None, "access_token", "refresh_token"):
            assert introspection(introspect(client, web_app, token, hint)) == INACTIVE


@pytest.mark.django_db
def test_expired_access_token_is_inactive(client: Client, user: Any, web_app: OAuthClient) -> None:
    tokens = obtain_tokens(client, user, web_app)
    expiry = datetime.fromtimestamp(unverified_claims(tokens["access_token"])["exp"], tz=UTC)

    with time_machine.travel(expiry - timedelta(seconds=60), tick=False):
        still_active = introspection(introspect(client, web_app, tokens["access_token"]))
    with time_machine.travel(expiry + timedelta(seconds=token_settings.LEEWAY + 60), tick=False):
        expired = introspection(introspect(client, web_app, tokens["access_token"]))

    assert still_active["active"] is True
    assert expired == INACTIVE


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "Qm9iIGlzIG5vdCBhIHRva2VuIHRoaXMgc2VydmVyIGlzc3VlZA",
        "x" * 10_000,
    ],
    ids=["garbage", "three-dots", "alg-none", "bad-signature", "unknown-opaque", "over-long"],
)
def test_garbage_and_unknown_tokens_are_inactive(
    client: Client, web_app: OAuthClient, token: str
) -> None:
    for hint in (None, "access_token", "refresh_token"):
        assert introspection(introspect(client, web_app, token, hint)) == INACTIVE


@pytest.mark.django_db
def test_an_id_token_is_not_an_active_access_token(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    assert introspection(introspect(client, web_app, tokens["id_token"])) == INACTIVE


@pytest.mark.django_db
def test_an_access_token_signed_by_another_key_is_inactive(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    claims = unverified_claims(tokens["access_token"])
    header = jwt.get_unverified_header(tokens["access_token"])
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, foreign, algorithm="RS256", headers=header)

    assert introspection(introspect(client, web_app, forged)) == INACTIVE


@pytest.mark.django_db
def test_password_service_token_is_active_until_its_session_is_revoked(
    client: Client, user: Any, web_app: OAuthClient, password_credentials: dict[str, str]
) -> None:
    tokens = password_tokens(client, password_credentials)
    claims = unverified_claims(tokens["access_token"])

    active = introspection(introspect(client, web_app, tokens["access_token"]))
    sessions.revoke_user(user)
    revoked = introspection(introspect(client, web_app, tokens["access_token"]))

    assert active == {
        "active": True,
        "token_type": "Bearer",
        "scope": "profile email",
        "sub": str(user.pk),
        "aud": AUDIENCE,
        "iss": ISSUER,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "jti": claims["jti"],
        "sid": claims["sid"],
        "username": "alice",
    }
    assert revoked == INACTIVE


@pytest.mark.django_db
def test_tokens_of_a_deactivated_user_are_inactive(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    user.is_active = False
    user.save()

    assert introspection(introspect(client, web_app, tokens["access_token"])) == INACTIVE
    assert introspection(introspect(client, web_app, tokens["refresh_token"])) == INACTIVE


@pytest.mark.django_db
@pytest.mark.parametrize("path", INTROSPECT_PATHS)
@pytest.mark.parametrize("auth", ["basic", "none"])
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_introspect_other_methods_are_405_json_with_allow_post(
    client: Client, web_app: OAuthClient, method: str, auth: str, path: str
) -> None:
    _, headers = client_auth(web_app, auth)

    response = getattr(client, method)(path, **headers)

    assert_envelope(response, 405, "invalid_request", "Use POST.")
    assert response["Allow"] == "POST"


@pytest.mark.django_db
@pytest.mark.parametrize("fields", [{}, {"token": ""}], ids=["absent", "empty"])
def test_introspect_missing_token_is_invalid_request(
    client: Client, web_app: OAuthClient, fields: dict[str, str]
) -> None:
    response = form_post(client, "/oauth2/introspect", web_app, fields)

    assert_envelope(response, 400, "invalid_request", "The 'token' parameter is required.")
    assert_no_store(response)


@pytest.mark.django_db
def test_introspect_json_body_is_a_json_400(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = client.post(
        "/oauth2/introspect",
        json.dumps({"token": tokens["access_token"]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(web_app.client_id, web_app.secret),
    )

    assert_envelope(response, 400, "invalid_request")


@pytest.mark.django_db
def test_introspect_oversized_body_is_invalid_request(client: Client, web_app: OAuthClient) -> None:
    fields = {"token": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}

    response = form_post(client, "/oauth2/introspect", web_app, fields)

    assert_envelope(response, 400, "invalid_request", "The request body is too large.")


# -- GET/POST /oauth2/userinfo (OIDC Core §5.3) -----------------------------------------------


@pytest.fixture
def named_user(user: Any) -> Any:
    user.first_name, user.last_name = "Alice", "Liddell"
    user.save()
    UserMetadata.objects.create(user=user, email_verified=True)
    return user


@pytest.mark.django_db
@pytest.mark.parametrize("path", USERINFO_PATHS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_userinfo_returns_the_claims_of_openid_profile_and_email(
    client: Client, named_user: Any, web_app: OAuthClient, method: str, path: str
) -> None:
    tokens = obtain_tokens(client, named_user, web_app)

    response = userinfo(client, tokens["access_token"], method, path)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "sub": str(named_user.pk),
        "name": "Alice Liddell",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "email_verified": True,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scope", "claims"),
    [
        ("openid profile", {"name", "preferred_username"}),
        ("openid email", {"email", "email_verified"}),
        ("openid", set()),
        ("openid read", set()),
    ],
)
def test_userinfo_claims_follow_the_granted_scopes(
    client: Client, named_user: Any, web_app: OAuthClient, scope: str, claims: set[str]
) -> None:
    tokens = obtain_tokens(client, named_user, web_app, scope)

    response = userinfo(client, tokens["access_token"])

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"sub", *claims}
    assert response.json()["sub"] == str(named_user.pk)


@pytest.mark.django_db
def test_userinfo_post_works_for_a_client_without_a_csrf_token(
    user: Any, web_app: OAuthClient
) -> None:
    api_client = Client(enforce_csrf_checks=True)
    tokens = obtain_tokens(api_client, user, web_app)

    response = api_client.post("/oauth2/userinfo", headers=bearer(tokens["access_token"]))

    assert response.status_code == 200, response.content[:300]
    assert response.json()["sub"] == str(user.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_userinfo_without_the_openid_scope_is_403_insufficient_scope(
    client: Client, user: Any, web_app: OAuthClient, method: str
) -> None:
    tokens = obtain_tokens(client, user, web_app, "profile email")

    response = userinfo(client, tokens["access_token"], method)

    assert_envelope(response, 403, "insufficient_scope", NO_OPENID_MESSAGE)
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge


@pytest.mark.django_db
@pytest.mark.parametrize("token", [None, "garbage", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_userinfo_without_a_valid_token_is_401_json_with_a_bearer_challenge(
    client: Client, method: str, token: str | None
) -> None:
    response = userinfo(client, token, method)

    assert_envelope(response, 401, "invalid_token", INVALID_TOKEN_MESSAGE)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_userinfo_with_a_revoked_token_is_401(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)
    assert userinfo(client, tokens["access_token"]).status_code == 200
    assert revoke(client, web_app, tokens["access_token"]).status_code == 200

    response = userinfo(client, tokens["access_token"])

    assert_envelope(response, 401, "invalid_token", INVALID_TOKEN_MESSAGE)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_userinfo_with_an_expired_token_is_401(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2), tick=False):
        response = userinfo(client, tokens["access_token"])

    assert_envelope(response, 401, "invalid_token", INVALID_TOKEN_MESSAGE)


@pytest.mark.django_db
def test_userinfo_refuses_a_password_service_token(
    client: Client, user: Any, password_credentials: dict[str, str]
) -> None:
    tokens = password_tokens(client, password_credentials)

    response = userinfo(client, tokens["access_token"])

    assert_envelope(response, 401, "invalid_token", INVALID_TOKEN_MESSAGE)


@pytest.mark.django_db
def test_client_credentials_cannot_get_openid_and_its_token_cannot_read_userinfo(
    client: Client,
) -> None:
    application, output = create_application(
        "confidential", "client-credentials", "--name=reporting-service"
    )
    service = OAuthClient(application.client_id, printed_secret(output), application)
    auth = basic(service.client_id, service.secret)
    refused = client.post(
        "/oauth2/token",
        {"grant_type": "client_credentials", "scope": "openid profile"},
        HTTP_AUTHORIZATION=auth,
    )
    assert refused.status_code == 400, refused.content
    assert refused.json()["error"] == "invalid_scope"
    granted = client.post(
        "/oauth2/token",
        {"grant_type": "client_credentials", "scope": "profile"},
        HTTP_AUTHORIZATION=auth,
    )
    assert granted.status_code == 200, granted.content

    response = userinfo(client, granted.json()["access_token"])

    assert response.status_code == 403, response.content
    assert response.json()["error"] == "insufficient_scope"
    assert response["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="openid"'


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_userinfo_other_methods_are_405_json(
    client: Client, user: Any, web_app: OAuthClient, method: str
) -> None:
    tokens = obtain_tokens(client, user, web_app)

    response = userinfo(client, tokens["access_token"], method)

    assert_envelope(response, 405, "invalid_request", "Use GET or POST.")
    assert response["Allow"] == "GET, POST"


# -- discovery (RFC 8414, OpenID Connect Discovery 1.0) ---------------------------------------


@pytest.fixture
def live_issuer(live_server: Any) -> Iterator[str]:
    """``live_server`` as the configured issuer."""
    with tokens_config(ISSUER=live_server.url):
        yield live_server.url


def get_json(url: str, **kwargs: Any) -> Any:
    response = requests.get(url, headers=CLOSE, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


class Browser:
    """A browser over ``requests``: cookies kept, one connection per request (``CLOSE``), no
    redirects followed."""

    def __init__(self) -> None:
        self.cookies = requests.cookies.RequestsCookieJar()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        response = requests.request(
            method,
            url,
            cookies=self.cookies,
            headers=CLOSE,
            allow_redirects=False,
            timeout=10,
            **kwargs,
        )
        self.cookies.update(response.cookies)
        return response


def form_target(page_url: str, page: PageParser) -> str:
    """Where a browser submits the page's form: its ``action``, or the page itself."""
    (form,) = page.forms
    action = form.get("action", "")
    return urljoin(page_url, action) if action else page_url


def exchange_over_http(
    document: dict[str, Any], app: OAuthClient, code: str, verifier: str
) -> dict[str, Any]:
    response = requests.post(
        document["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(app.client_id, app.secret),
        headers=CLOSE,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def browser_flow(
    document: dict[str, Any],
    app: OAuthClient,
    credentials: dict[str, str],
    scope: str,
    nonce: str,
) -> dict[str, Any]:
    """The authorization-code flow over HTTP as a browser and a client run it: authorize,
    sign in on the login page, allow on the consent page (each form submitted where the
    page says), exchange the code."""
    browser = Browser()
    verifier, challenge = pkce_pair()
    params = authorize_params(app, scope, challenge, nonce=nonce)

    to_login = browser.request("GET", document["authorization_endpoint"], params=params)
    assert to_login.status_code == 302, to_login.text
    login_url = urljoin(to_login.url, to_login.headers["Location"])
    login_page = browser.request("GET", login_url)
    assert login_page.status_code == 200, login_page.text
    login = parse_page(login_page.text)
    signed_in = browser.request(
        "POST", form_target(login_url, login), data={**login.hidden_fields(), **credentials}
    )
    assert signed_in.status_code == 302, signed_in.text
    consent_url = urljoin(login_url, signed_in.headers["Location"])
    assert consent_url == to_login.url, "sign-in must return to the authorization request"
    consent_page = browser.request("GET", consent_url)
    assert consent_page.status_code == 200, consent_page.text
    consent = parse_page(consent_page.text)
    allowed = browser.request(
        "POST", form_target(consent_url, consent), data={**consent.hidden_fields(), "allow": "on"}
    )
    assert allowed.status_code == 302, allowed.text
    code = code_from(allowed.headers["Location"], params["state"])
    return exchange_over_http(document, app, code, verifier)


def verify_id_token(document: dict[str, Any], id_token: str, client_id: str) -> dict[str, Any]:
    signing_key = jwt.PyJWKClient(document["jwks_uri"], headers=CLOSE).get_signing_key_from_jwt(
        id_token
    )
    return jwt.decode(
        id_token,
        signing_key.key,
        algorithms=document["id_token_signing_alg_values_supported"],
        audience=client_id,
        issuer=document["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )


def assert_id_token_matches(
    document: dict[str, Any], tokens: dict[str, Any], app: OAuthClient, user: Any, nonce: str
) -> None:
    claims = verify_id_token(document, tokens["id_token"], app.client_id)
    access_claims = unverified_claims(tokens["access_token"])
    info = requests.get(
        document["userinfo_endpoint"],
        headers={**bearer(tokens["access_token"]), **CLOSE},
        timeout=10,
    )

    assert claims["iss"] == access_claims["iss"] == document["issuer"]
    assert claims["sub"] == access_claims["sub"] == str(user.pk)
    assert claims["nonce"] == nonce
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == b64url(digest[: len(digest) // 2])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == claims["sub"]
    assert info.json()["email"] == claims["email"] == "alice@example.com"


def test_code_flow_id_token_verifies_with_the_discovered_jwks_and_issuer(
    live_issuer: str, user: Any
) -> None:
    app = web_client("Photo Printer")
    document = get_json(f"{live_issuer}/.well-known/openid-configuration")
    nonce = secrets.token_urlsafe(16)
    code, verifier = authorization_code(user, app, USER_SCOPE, nonce=nonce)

    tokens = exchange_over_http(document, app, code, verifier)

    assert document["issuer"] == live_issuer
    assert_id_token_matches(document, tokens, app, user, nonce)


def test_browser_flow_over_http_signs_in_returns_to_consent_and_gets_tokens(
    live_issuer: str, user: Any, password_credentials: dict[str, str]
) -> None:
    app = web_client("Photo Printer")
    document = get_json(f"{live_issuer}/.well-known/openid-configuration")
    nonce = secrets.token_urlsafe(16)

    tokens = browser_flow(document, app, password_credentials, USER_SCOPE, nonce)

    assert_id_token_matches(document, tokens, app, user, nonce)


def test_every_listed_endpoint_answers_on_the_live_server(live_issuer: str) -> None:
    service_app, output = create_application(
        "confidential", "client-credentials", "--name=reporting-service"
    )
    for path in DISCOVERY_PATHS:
        response = requests.get(f"{live_issuer}{path}", headers=CLOSE, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        document = response.json()
        endpoints = {key for key in document if key.endswith("_endpoint")}
        assert endpoints == {
            "authorization_endpoint",
            "token_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
            "userinfo_endpoint",
        }, path
        assert document["issuer"] == live_issuer
        for key in [*endpoints, "jwks_uri"]:
            assert document[key].startswith(live_issuer + "/"), (path, key)

        bad_grant = requests.post(
            document["token_endpoint"], data={"grant_type": "nope"}, headers=CLOSE, timeout=10
        )
        issued = requests.post(
            document["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=(service_app.client_id, printed_secret(output)),
            headers=CLOSE,
            timeout=10,
        )
        authorize = requests.get(
            document["authorization_endpoint"], headers=CLOSE, timeout=10, allow_redirects=False
        )
        revocation = requests.post(
            document["revocation_endpoint"], data={"token": "x"}, headers=CLOSE, timeout=10
        )
        introspection_answer = requests.post(
            document["introspection_endpoint"], data={"token": "x"}, headers=CLOSE, timeout=10
        )
        userinfo_answer = requests.get(document["userinfo_endpoint"], headers=CLOSE, timeout=10)
        jwks = get_json(document["jwks_uri"])

        assert bad_grant.status_code == 400, bad_grant.text
        assert bad_grant.headers["Content-Type"] == "application/json"
        assert bad_grant.json()["error"] == "unsupported_grant_type"
        assert issued.status_code == 200, issued.text
        assert unverified_claims(issued.json()["access_token"])["iss"] == document["issuer"]
        assert authorize.status_code == 302
        assert urlparse(authorize.headers["Location"]).path == "/oauth2/login"
        for answer in (revocation, introspection_answer):
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"] == "invalid_client"
            assert answer.headers["WWW-Authenticate"].startswith("Basic ")
        assert userinfo_answer.status_code == 401, userinfo_answer.text
        assert userinfo_answer.json()["error"] == "invalid_token"
        assert userinfo_answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert jwks["keys"]
        assert document["id_token_signing_alg_values_supported"] == sorted(
            {key["alg"] for key in jwks["keys"]}
        )


@pytest.mark.django_db
@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_discovery_advertises_exactly_what_the_server_does(client: Client, path: str) -> None:
    document = client.get(path).json()
    jwks = client.get("/.well-known/jwks.json").json()

    assert document["issuer"] == ISSUER
    assert document["grant_types_supported"] == THREE_GRANTS
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["scopes_supported"] == sorted(token_settings.OAUTH2_SCOPES)
    assert document["id_token_signing_alg_values_supported"] == sorted(
        {key["alg"] for key in jwks["keys"]}
    )
    assert "client_secret_basic" in document["token_endpoint_auth_methods_supported"]
    assert "none" not in document["introspection_endpoint_auth_methods_supported"]


@pytest.mark.django_db
def test_scopes_and_claims_supported_follow_the_oauth2_scopes_setting(client: Client) -> None:
    scopes = {"openid": "Sign you in", "profile": "See your name", "orders": "See your orders"}
    with tokens_config(OAUTH2_SCOPES=scopes):
        openid = client.get("/.well-known/openid-configuration").json()
        oauth = client.get("/.well-known/oauth-authorization-server").json()

    assert openid["scopes_supported"] == oauth["scopes_supported"] == sorted(scopes)
    assert openid["claims_supported"] == ["sub", "name", "preferred_username"]


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["--algorithm", "setting"])
def test_signing_algorithms_follow_a_rotation_to_es256(
    client: Client, user: Any, web_app: OAuthClient, how: str
) -> None:
    before = client.get("/.well-known/openid-configuration").json()
    assert before["id_token_signing_alg_values_supported"] == ["RS256"]

    with tokens_config(SIGNING_ALGORITHM="ES256" if how == "setting" else "RS256"):
        if how == "setting":
            call_command("rotate_signing_key", stdout=io.StringIO())
        else:
            call_command("rotate_signing_key", "--algorithm", "ES256", stdout=io.StringIO())
        documents = [client.get(path).json() for path in DISCOVERY_PATHS]
        jwks = client.get("/.well-known/jwks.json").json()
        tokens = obtain_tokens(client, user, web_app)

    active = SigningKey.objects.get(state=SigningKey.State.ACTIVE)
    assert active.algorithm == "ES256"
    published = sorted({key["alg"] for key in jwks["keys"]})
    assert published == ["ES256", "RS256"]  # the retiring RS256 key is still published
    for document in documents:
        assert document["id_token_signing_alg_values_supported"] == published
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "ES256"
    assert header["kid"] == active.kid
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    claims = jwt.decode(
        tokens["id_token"],
        jwt.PyJWK(jwk).key,
        algorithms=documents[0]["id_token_signing_alg_values_supported"],
        audience=web_app.client_id,
        issuer=documents[0]["issuer"],
    )
    assert claims["sub"] == str(user.pk)


@pytest.mark.django_db
def test_a_fresh_es256_keystore_advertises_es256_only(client: Client) -> None:
    with tokens_config(SIGNING_ALGORITHM="ES256"):
        document = client.get("/.well-known/oauth-authorization-server").json()
        jwks = client.get("/.well-known/jwks.json").json()

    assert {key["alg"] for key in jwks["keys"]} == {"ES256"}
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]


@pytest.mark.django_db
def test_discovery_documents_pass_authlibs_metadata_validators(client: Client) -> None:
    issuer = "https://auth.example.com"
    with tokens_config(ISSUER=issuer):
        openid = client.get("/.well-known/openid-configuration").json()
        oauth = client.get("/.well-known/oauth-authorization-server").json()

    AuthorizationServerMetadata(oauth).validate()
    AuthorizationServerMetadata(openid).validate()
    OpenIDProviderMetadata(openid).validate()
    assert openid["issuer"] == oauth["issuer"] == issuer
    assert openid["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert openid["token_endpoint"] == f"{issuer}/oauth2/token"


# -- the login and consent pages ---------------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(WINDOW_START + timedelta(seconds=10), tick=False) as traveller:
        yield traveller


def authorize_url(app: OAuthClient, scope: str = USER_SCOPE) -> str:
    _, challenge = pkce_pair()
    params = authorize_params(app, scope, challenge)
    return f"/oauth2/authorize?{urlencode(params)}"


def sign_in(client: Client, username: str, password: str, next_url: str = "/") -> Any:
    return client.post(
        "/oauth2/login", {"username": username, "password": password, "next": next_url}
    )


def signed_in_user_id(client: Client) -> str | None:
    return client.session.get(SESSION_KEY)


@pytest.mark.django_db
def test_unauthenticated_authorize_redirects_to_the_login_page(
    client: Client, web_app: OAuthClient
) -> None:
    url = authorize_url(web_app)

    response = client.get(url)

    assert response.status_code == 302
    location = urlparse(response["Location"])
    assert location.path == "/oauth2/login"
    assert parse_qs(location.query)["next"] == [url]


@pytest.mark.django_db
def test_login_page_is_a_labelled_csrf_protected_form_never_framed_or_cached(
    client: Client, web_app: OAuthClient
) -> None:
    next_url = authorize_url(web_app)

    response = client.get("/oauth2/login", {"next": next_url})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response["X-Frame-Options"] == "DENY"
    assert_never_cached(response)
    page = parse_page(response.content)
    username, password = page.input("username"), page.input("password")
    assert username["type"] == "text"
    assert password["type"] == "password"
    assert page.labels[username["id"]] == "Username"
    assert page.labels[password["id"]] == "Password"
    assert page.input("csrfmiddlewaretoken")["value"]
    assert page.input("next")["value"] == next_url
    (form,) = page.forms
    assert form["method"] == "post"


@pytest.mark.django_db
def test_login_without_a_csrf_token_is_403(user: Any, password_credentials: dict[str, str]) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/oauth2/login")

    refused = browser.post("/oauth2/login", password_credentials)
    assert signed_in_user_id(browser) is None
    token = parse_page(browser.get("/oauth2/login").content).input("csrfmiddlewaretoken")["value"]
    accepted = browser.post("/oauth2/login", {**password_credentials, "csrfmiddlewaretoken": token})

    assert refused.status_code == 403
    assert accepted.status_code == 302
    assert signed_in_user_id(browser) == str(user.pk)


@pytest.mark.django_db
def test_wrong_password_shows_an_error_and_signs_nobody_in(client: Client, user: Any) -> None:
    response = sign_in(client, "alice", "not-her-password")

    assert response.status_code == 200
    assert BAD_LOGIN_TEXT in response.content.decode()
    assert signed_in_user_id(client) is None


@pytest.mark.django_db
def test_success_redirects_to_next(client: Client, user: Any, web_app: OAuthClient) -> None:
    next_url = authorize_url(web_app)

    response = sign_in(client, "alice", "alice-password", next_url)

    assert response.status_code == 302
    assert response["Location"] == next_url
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.django_db
def test_submitting_the_rendered_login_form_returns_to_next(
    client: Client, user: Any, web_app: OAuthClient
) -> None:
    next_url = authorize_url(web_app)
    page_url = f"/oauth2/login?{urlencode({'next': next_url})}"
    page = parse_page(client.get(page_url).content)

    response = client.post(
        form_target(page_url, page),
        {**page.hidden_fields(), "username": "alice", "password": "alice-password"},
    )

    assert response.status_code == 302
    assert response["Location"] == next_url
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.django_db
def test_success_never_redirects_off_site(client: Client, user: Any) -> None:
    response = sign_in(client, "alice", "alice-password", "https://evil.example.com/steal")

    assert response.status_code == 302
    assert "evil.example.com" not in response["Location"]
    assert response["Location"] == settings.LOGIN_REDIRECT_URL


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [None, 2], ids=["default-limit", "limit-2"])
def test_failed_sign_ins_lock_the_username_even_for_the_right_password(
    client: Client, user: Any, frozen: Any, limit: int | None
) -> None:
    overrides = {"THROTTLE_FAILURES_PER_IP": 100}
    if limit is not None:
        overrides["THROTTLE_FAILURES_PER_USERNAME"] = limit
    with tokens_config(**overrides):
        failures = token_settings.THROTTLE_FAILURES_PER_USERNAME
        if limit is None:
            assert failures == 5
        for _ in range(failures):
            wrong = sign_in(client, "alice", "not-her-password")
            assert wrong.status_code == 200
            assert BAD_LOGIN_TEXT in wrong.content.decode()
            assert not THROTTLED_LOGIN_TEXT.search(wrong.content.decode())
        locked = sign_in(client, "alice", "alice-password")
        other = sign_in(client, "bob", "whatever")

    assert locked.status_code == 200
    match = THROTTLED_LOGIN_TEXT.search(locked.content.decode())
    assert match, locked.content.decode()
    assert 1 <= int(match.group(1)) <= token_settings.THROTTLE_WINDOW + 1
    assert BAD_LOGIN_TEXT not in locked.content.decode()
    assert signed_in_user_id(client) is None
    assert BAD_LOGIN_TEXT in other.content.decode()


@pytest.mark.django_db
def test_the_lock_lifts_in_the_next_window(client: Client, user: Any, frozen: Any) -> None:
    with tokens_config(THROTTLE_FAILURES_PER_USERNAME=1, THROTTLE_FAILURES_PER_IP=100):
        sign_in(client, "alice", "not-her-password")
        locked = sign_in(client, "alice", "alice-password")
        frozen.shift(token_settings.THROTTLE_WINDOW)
        unlocked = sign_in(client, "alice", "alice-password")

    assert THROTTLED_LOGIN_TEXT.search(locked.content.decode())
    assert unlocked.status_code == 302
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.django_db
def test_consent_page_names_the_application_and_the_scopes_in_words(
    user: Any, web_app: OAuthClient
) -> None:
    browser = Client()
    browser.force_login(user)

    response = browser.get(authorize_url(web_app, "openid email"))

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert_never_cached(response)
    page = parse_page(response.content)
    assert page.list_items == [
        token_settings.OAUTH2_SCOPES["openid"],
        token_settings.OAUTH2_SCOPES["email"],
    ]
    assert "See your email address" in page.list_items
    html = response.content.decode()
    assert "Allow Photo Printer to access your account?" in html
    assert "See your name and username" not in html


@pytest.mark.django_db
def test_consent_page_words_follow_the_oauth2_scopes_setting(
    user: Any, web_app: OAuthClient
) -> None:
    browser = Client()
    browser.force_login(user)
    scopes = {**token_settings.OAUTH2_SCOPES, "email": "Know where to write to you"}

    with tokens_config(OAUTH2_SCOPES=scopes):
        response = browser.get(authorize_url(web_app, "openid email"))

    assert response.status_code == 200
    assert parse_page(response.content).list_items == [
        scopes["openid"],
        "Know where to write to you",
    ]


@pytest.mark.django_db
def test_consent_without_a_csrf_token_is_403_and_issues_no_code(
    user: Any, web_app: OAuthClient
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    url = authorize_url(web_app)
    page = browser.get(url)
    assert page.status_code == 200
    fields = parse_page(page.content).hidden_fields()
    without_token = {name: value for name, value in fields.items() if name != "csrfmiddlewaretoken"}

    refused = browser.post(url, {**without_token, "allow": "on"})
    assert not Grant.objects.exists()
    allowed = browser.post(url, {**fields, "allow": "on"})

    assert refused.status_code == 403
    assert allowed.status_code == 302
    assert code_from(allowed["Location"], fields["state"])
    assert Grant.objects.count() == 1


LOGIN_REQUIRED_MIDDLEWARE = [
    *settings.MIDDLEWARE,
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/oauth2/token", 400),
        ("post", "/oauth2/revoke", 400),
        ("post", "/oauth2/introspect", 401),
        ("get", "/oauth2/userinfo", 401),
        ("get", "/oauth2/login", 200),
        ("get", "/.well-known/openid-configuration", 200),
        ("get", "/.well-known/oauth-authorization-server", 200),
        ("get", "/.well-known/jwks.json", 200),
        ("post", "/api/token", 415),
    ],
)
def test_endpoints_stay_reachable_behind_login_required_middleware(
    client: Client, method: str, path: str, status: int
) -> None:
    with override_settings(MIDDLEWARE=LOGIN_REQUIRED_MIDDLEWARE):
        response = getattr(client, method)(path)
    assert response.status_code == status, (path, response.status_code, response.get("Location"))


@pytest.mark.django_db
def test_authorize_behind_login_required_middleware_sends_users_to_its_own_login_page(
    client: Client,
) -> None:
    with override_settings(MIDDLEWARE=LOGIN_REQUIRED_MIDDLEWARE):
        response = client.get("/oauth2/authorize", {"client_id": "x", "response_type": "code"})
    assert response.status_code == 302
    assert response["Location"].startswith("/oauth2/login?next=")
