"""The authorization-code grant with PKCE, refresh rotation and revocation (SPEC §3, §4, §6).

Covers, for public and confidential django-oauth-toolkit applications created with its
``createapplication`` command:

- the browser flow through the real login and consent pages (CSRF enforced, tokens read from
  the HTML forms), the code exchange at ``POST /oauth2/token`` with ``code_verifier``, the
  response keys (``id_token`` only when ``openid`` is granted) and consent refusal;
- the same flow against ``live_server`` with Authlib's and requests-oauthlib's
  ``OAuth2Session``, the tokens verified with PyJWT's ``PyJWKClient`` against the served JWKS
  and presented to the example project's ``GET /api/me``;
- authorize and token errors (single-use and short-lived codes, PKCE, exact redirect URIs,
  scopes, content type, codes bound to their client) in the dual error envelope;
- refresh: rotation, narrower and broader scopes, the retry grace and reuse detection that
  revokes the whole family;
- ID tokens: signed by the keystore, ``aud`` the client, the ``nonce`` echoed, and stored
  with the access token they came with;
- revocation marks: access tokens django-oauth-toolkit dropped (rotation, reuse, a deactivated
  user, a deleted application) are refused by ``JWTAuthentication`` without a database query,
  and by django-oauth-toolkit's own ``OAuth2Authentication``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urljoin, urlsplit
from uuid import UUID

import jwt
import pytest
import requests
import time_machine
from authlib.integrations.requests_client import OAuth2Session as AuthlibOAuth2Session
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.models import AccessToken, Application, Grant, IDToken, RefreshToken
from oauth2_provider.settings import oauth2_settings
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth2Session as OAuthlibOAuth2Session
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken

from django_tokens.authentication import JWTAuthentication
from django_tokens.conf import token_settings
from django_tokens.models import SigningKey

AUTHORIZE = "/oauth2/authorize"
LOGIN = "/oauth2/login"
TOKEN = "/oauth2/token"
JWKS = "/.well-known/jwks.json"
ISSUER = "http://testserver"
AUDIENCE = "django-tokens"
CALLBACK = "https://client.example.com/callback"
OTHER_CALLBACK = "https://client.example.com/other-callback"
USERNAME = "alice"
PASSWORD = "alice-password"
STATE = "state-" + "x" * 24
LOGIN_FIELDS = {"csrfmiddlewaretoken", "username", "password", "next"}
CODE_KEYS = {"access_token", "expires_in", "token_type", "scope", "refresh_token"}
ACCESS_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"]
ID_CLAIMS = ["iss", "sub", "aud", "exp", "iat"]
#: No keep-alive: the live server's request threads close their database connections as soon
#: as each response is sent.
CLOSE = {"Connection": "close"}


# -- clients, PKCE and the HTML forms -------------------------------------------------------


@dataclass(frozen=True)
class WebClient:
    """An authorization-code application and what its developer knows about it."""

    application: Application
    secret: str | None
    redirect_uri: str

    @property
    def client_id(self) -> str:
        return str(self.application.client_id)

    @property
    def is_public(self) -> bool:
        return self.secret is None


def register(client_type: str, name: str, *redirect_uris: str) -> WebClient:
    """``manage.py createapplication CLIENT_TYPE authorization-code``; a public client keeps
    no secret."""
    out = io.StringIO()
    call_command(
        "createapplication",
        client_type,
        "authorization-code",
        f"--name={name}",
        f"--redirect-uris={' '.join(redirect_uris)}",
        stdout=out,
    )
    application = Application.objects.get(name=name)
    secret = None
    if client_type == "confidential":
        (line,) = [ln for ln in out.getvalue().splitlines() if ln.startswith("client_secret: ")]
        secret = line.removeprefix("client_secret: ")
    return WebClient(application, secret, redirect_uris[0])


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def new_pkce() -> Pkce:
    """RFC 7636 §4.1-4.2: a 64-character verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


@dataclass
class HtmlForm:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """The forms of a page: their inputs (with values) and their named buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []
        self._open: HtmlForm | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._open = HtmlForm(attributes.get("action", ""), attributes.get("method", "get"))
            self.forms.append(self._open)
        elif self._open is not None and attributes.get("name"):
            if tag == "input" and attributes.get("type") != "submit":
                self._open.fields[attributes["name"]] = attributes.get("value", "")
            elif tag == "button":
                self._open.buttons[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def only_form(html: str) -> HtmlForm:
    parser = _FormParser()
    parser.feed(html)
    (form,) = parser.forms
    assert form.method.lower() == "post"
    return form


def authorize_query(
    web: WebClient,
    pkce: Pkce | None,
    *,
    scope: str = "openid profile",
    nonce: str | None = None,
    redirect_uri: str | None = None,
    **extra: str,
) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": web.client_id,
        "redirect_uri": redirect_uri or web.redirect_uri,
        "scope": scope,
        "state": STATE,
    }
    if pkce is not None:
        query.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    if nonce is not None:
        query["nonce"] = nonce
    query.update(extra)
    return query


def sign_in_and_consent(browser: Client, query: dict[str, str], *, allow: bool = True) -> Any:
    """Drive the browser flow with a CSRF-enforcing client; returns the consent answer."""
    authorize_url = f"{AUTHORIZE}?{urlencode(query)}"
    start = browser.get(authorize_url)
    assert start.status_code == 302, start.content
    login_url = start["Location"]
    assert urlsplit(login_url).path == LOGIN
    assert parse_qs(urlsplit(login_url).query)["next"] == [authorize_url]

    login_page = browser.get(login_url)
    assert login_page.status_code == 200
    login_form = only_form(login_page.content.decode())
    assert set(login_form.fields) == LOGIN_FIELDS, login_form.fields
    assert login_form.fields["next"] == authorize_url
    signed_in = browser.post(
        urljoin(login_url, login_form.action),
        {**login_form.fields, "username": USERNAME, "password": PASSWORD},
    )
    assert signed_in.status_code == 302, signed_in.content
    assert signed_in["Location"] == authorize_url

    consent_page = browser.get(authorize_url)
    assert consent_page.status_code == 200, consent_page.content
    consent = only_form(consent_page.content.decode())
    assert consent.buttons == {"allow": "on"}
    assert consent.fields["client_id"] == query["client_id"]
    assert "csrfmiddlewaretoken" in consent.fields
    data = {**consent.fields, **(consent.buttons if allow else {})}
    return browser.post(urljoin(authorize_url, consent.action or authorize_url), data)


def callback_params(response: Any, redirect_uri: str) -> dict[str, str]:
    """The query of a redirect to ``redirect_uri`` (exactly that URI, plus a query)."""
    assert response.status_code == 302, getattr(response, "content", b"")
    location = response["Location"]
    assert location.split("?", 1)[0] == redirect_uri
    params = parse_qs(urlsplit(location).query, strict_parsing=True)
    assert all(len(values) == 1 for values in params.values()), params
    return {name: values[0] for name, values in params.items()}


def assert_error_redirect(params: dict[str, str], error: str) -> None:
    """An authorization error sent back to the client: the error and its state, no code."""
    assert params["error"] == error
    assert params["state"] == STATE
    assert "code" not in params


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: both parts form-urlencoded, then HTTP Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def post_token(client: Client, web: WebClient, data: dict[str, str]) -> Any:
    """A token request from ``web``: HTTP Basic for a confidential client, ``client_id`` in
    the form for a public one."""
    if web.is_public:
        return client.post(TOKEN, {**data, "client_id": web.client_id})
    assert web.secret is not None
    return client.post(TOKEN, data, HTTP_AUTHORIZATION=basic(web.client_id, web.secret))


def exchange(
    client: Client,
    web: WebClient,
    code: str,
    verifier: str | None,
    *,
    redirect_uri: str | None = None,
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri or web.redirect_uri,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return post_token(client, web, data)


def refresh(client: Client, web: WebClient, refresh_token: str, scope: str | None = None) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        data["scope"] = scope
    return post_token(client, web, data)


def token_body(response: Any, *, with_id_token: bool) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == CODE_KEYS | ({"id_token"} if with_id_token else set())
    assert body["token_type"] == "bearer"
    assert type(body["expires_in"]) is int
    assert body["expires_in"] == 3600
    return body


def assert_oauth2_error(response: Any, status: int, code: str, description: str) -> None:
    """``status`` with RFC 6749's fields and the seed's envelope, carrying one description."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "error": code,
        "error_description": description,
        "meta": {"pagination": {"limit": 0, "offset": 0, "total_count": 0}},
        "errors": [{"httpcode": status, "message": description}],
    }
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Basic ")
    else:
        assert not response.has_header("WWW-Authenticate")


def assert_invalid_grant(response: Any) -> None:
    assert_oauth2_error(response, 400, "invalid_grant", "Invalid grant")


def obtain_tokens(
    browser: Client,
    web: WebClient,
    *,
    scope: str = "openid profile read",
    nonce: str | None = None,
) -> dict[str, Any]:
    pkce = new_pkce()
    query: dict[str, str] = {"scope": scope}
    if nonce is not None:
        query["nonce"] = nonce
    code = issue_code(browser, web, pkce, **query)
    response = exchange(browser, web, code, pkce.verifier)
    return token_body(response, with_id_token="openid" in scope.split())


def signed_in_browser(user: Any) -> Client:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    return browser


def answer_consent(
    browser: Client, web: WebClient, pkce: Pkce, *, allow: bool = True, **query: str
) -> Any:
    """A signed-in ``browser`` opens the consent page for ``web`` and allows (the button
    named ``allow``) or denies (the unnamed one)."""
    authorize_url = f"{AUTHORIZE}?{urlencode(authorize_query(web, pkce, **query))}"
    consent_page = browser.get(authorize_url)
    assert consent_page.status_code == 200, consent_page.content
    consent = only_form(consent_page.content.decode())
    assert consent.buttons == {"allow": "on"}
    return browser.post(authorize_url, {**consent.fields, **(consent.buttons if allow else {})})


def issue_code(browser: Client, web: WebClient, pkce: Pkce, **query: str) -> str:
    """A code for ``web`` from a signed-in ``browser`` that allows the consent form."""
    return callback_params(answer_consent(browser, web, pkce, **query), web.redirect_uri)["code"]


# -- verification -------------------------------------------------------------------------


def served_jwks(client: Client) -> jwt.PyJWKSet:
    response = client.get(JWKS)
    assert response.status_code == 200
    return jwt.PyJWKSet.from_dict(response.json())


def verify_access_token(token: str, jwks: jwt.PyJWKSet, *, issuer: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    claims: dict[str, Any] = jwt.decode(
        token,
        jwks[header["kid"]].key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=issuer,
        options={"require": ACCESS_CLAIMS},
    )
    return claims


def verify_id_token(
    token: str, jwks: jwt.PyJWKSet, *, client_id: str, issuer: str
) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        jwks[header["kid"]].key,
        algorithms=["RS256"],
        audience=client_id,
        issuer=issuer,
        options={"require": ID_CLAIMS},
    )
    return claims


def me(client: Client, access_token: str) -> Any:
    return client.get("/api/me", headers={"Authorization": f"Bearer {access_token}"})


def assert_refused_by_api_me(client: Client, access_token: str) -> None:
    response = me(client, access_token)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "token_revoked"


def assert_jwt_authentication_refuses_without_a_query(
    access_token: str, django_assert_num_queries: Any
) -> None:
    """``JWTAuthentication`` refuses the token on its revocation mark alone."""
    authentication = JWTAuthentication()
    request = Request(
        APIRequestFactory().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    )
    with django_assert_num_queries(0), pytest.raises(InvalidToken) as refused:
        authentication.authenticate(request)
    assert refused.value.detail["code"] == "token_revoked"


class DotProtectedView(APIView):
    """A resource protected by django-oauth-toolkit's own authentication class."""

    authentication_classes = [OAuth2Authentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.pk, "scope": request.auth.scope})  # type: ignore[union-attr]


def dot_protected(access_token: str) -> Any:
    request = APIRequestFactory().get("/dot", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return DotProtectedView.as_view()(request)


def active_kid() -> str:
    return str(SigningKey.objects.get(state=SigningKey.State.ACTIVE).kid)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def public_client() -> WebClient:
    return register("public", "single-page-app", CALLBACK, OTHER_CALLBACK)


@pytest.fixture
def confidential_client() -> WebClient:
    return register("confidential", "web-app", CALLBACK, OTHER_CALLBACK)


@pytest.fixture(params=["public", "confidential"])
def web_client(request: pytest.FixtureRequest) -> WebClient:
    return register(str(request.param), f"{request.param}-app", CALLBACK, OTHER_CALLBACK)


@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses plain HTTP unless told otherwise; the live server speaks HTTP."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def live_issuer(live_server: Any) -> Iterator[str]:
    with override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, "ISSUER": live_server.url}):
        yield str(live_server.url)


# -- 1. the browser flow with the Django test client --------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["openid profile email", "openid email", "profile read"])
def test_code_flow_with_pkce_issues_the_seed_token_keys(
    browser: Client, user: Any, web_client: WebClient, scope: str
) -> None:
    granted = scope.split()
    nonce = secrets.token_urlsafe(16)
    pkce = new_pkce()
    query = authorize_query(web_client, pkce, scope=scope, nonce=nonce)

    answer = sign_in_and_consent(browser, query)
    params = callback_params(answer, CALLBACK)
    assert set(params) == {"code", "state"}
    assert params["state"] == STATE
    body = token_body(
        exchange(browser, web_client, params["code"], pkce.verifier),
        with_id_token="openid" in granted,
    )

    jwks = served_jwks(browser)
    assert body["scope"] == scope
    assert body["refresh_token"] != body["access_token"]
    claims = verify_access_token(body["access_token"], jwks, issuer=ISSUER)
    assert jwt.get_unverified_header(body["access_token"])["kid"] == active_kid()
    assert claims["sub"] == str(user.pk)
    assert claims["client_id"] == web_client.client_id
    assert claims["scope"] == scope
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    if "openid" in granted:
        id_claims = verify_id_token(
            body["id_token"], jwks, client_id=web_client.client_id, issuer=ISSUER
        )
        assert jwt.get_unverified_header(body["id_token"])["kid"] == active_kid()
        assert id_claims["sub"] == str(user.pk)
        assert id_claims["nonce"] == nonce
        assert id_claims["email"] == user.email
        assert ("preferred_username" in id_claims) is ("profile" in granted)
    assert not Grant.objects.exists()
    api_me = me(browser, body["access_token"])
    if "profile" not in granted:
        assert api_me.status_code == 403, api_me.content
        return
    assert api_me.status_code == 200, api_me.content
    assert api_me.json()["id"] == user.pk
    assert api_me.json()["username"] == USERNAME
    assert api_me.json()["client_id"] == web_client.client_id
    assert api_me.json()["scope"] == sorted(granted)


@pytest.mark.django_db
def test_a_users_token_stays_the_users_when_the_client_id_equals_the_users_id(
    user: Any, public_client: WebClient
) -> None:
    """A hand-set client id can be the string of a user's primary key. The token that user
    obtains through that client has ``sub`` equal to ``client_id``, as a client's own token
    has; it names the user (``preferred_username``), so it stays the user's."""
    application = public_client.application
    application.client_id = str(user.pk)
    application.save()
    web = WebClient(application, None, public_client.redirect_uri)

    body = obtain_tokens(signed_in_browser(user), web, scope="profile read")

    claims = verify_access_token(body["access_token"], served_jwks(Client()), issuer=ISSUER)
    assert claims["sub"] == claims["client_id"] == str(user.pk)
    response = me(Client(), body["access_token"])
    assert response.status_code == 200, response.content
    assert response.json()["id"] == user.pk
    assert response.json()["username"] == USERNAME
    assert response.json()["client_id"] == str(user.pk)


@pytest.mark.django_db
def test_id_token_is_stored_with_the_access_token_it_came_with(
    user: Any, public_client: WebClient
) -> None:
    body = obtain_tokens(signed_in_browser(user), public_client, scope="openid profile")
    id_claims = verify_id_token(
        body["id_token"], served_jwks(Client()), client_id=public_client.client_id, issuer=ISSUER
    )

    (stored,) = AccessToken.objects.select_related("id_token")
    (id_token,) = IDToken.objects.all()

    assert id_token.jti == UUID(id_claims["jti"])
    assert id_token.user_id == user.pk
    assert id_token.application_id == public_client.application.pk
    assert stored.id_token_id == id_token.pk


@pytest.mark.django_db
def test_consent_page_names_the_application_and_each_scope_in_words(
    user: Any, public_client: WebClient
) -> None:
    browser = signed_in_browser(user)
    query = authorize_query(public_client, new_pkce(), scope="openid email")

    page = browser.get(AUTHORIZE, query)

    assert page.status_code == 200
    assert page["X-Frame-Options"] == "DENY"
    html = page.content.decode()
    assert "single-page-app" in html
    assert "Sign you in (OpenID Connect)" in html
    assert "See your email address" in html
    assert "Change your data" not in html
    assert only_form(html).fields["scope"] == "openid email"


@pytest.mark.django_db
def test_login_page_carries_the_authorization_request_through_sign_in(
    browser: Client, user: Any, public_client: WebClient
) -> None:
    authorize_url = f"{AUTHORIZE}?{urlencode(authorize_query(public_client, new_pkce()))}"
    login_url = browser.get(authorize_url)["Location"]
    form = only_form(browser.get(login_url).content.decode())

    signed_in = browser.post(
        urljoin(login_url, form.action),
        {**form.fields, "username": USERNAME, "password": PASSWORD},
    )

    assert form.fields.get("next") == authorize_url, form.fields
    assert signed_in.status_code == 302
    assert signed_in["Location"] == authorize_url


@pytest.mark.django_db
def test_consent_deny_redirects_with_access_denied_and_state(
    user: Any, web_client: WebClient
) -> None:
    browser = signed_in_browser(user)

    answer = answer_consent(browser, web_client, new_pkce(), allow=False)

    params = callback_params(answer, CALLBACK)
    assert_error_redirect(params, "access_denied")
    assert not Grant.objects.exists()
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_wrong_password_on_the_login_page_issues_no_code(
    browser: Client, user: Any, public_client: WebClient
) -> None:
    authorize_url = f"{AUTHORIZE}?{urlencode(authorize_query(public_client, new_pkce()))}"
    login_url = browser.get(authorize_url)["Location"]
    form = only_form(browser.get(login_url).content.decode())

    answer = browser.post(LOGIN, {**form.fields, "username": USERNAME, "password": "wrong"})

    assert answer.status_code == 200
    assert "_auth_user_id" not in browser.session
    assert browser.get(authorize_url).status_code == 302
    assert not Grant.objects.exists()


# -- 2. real OAuth client libraries against live_server -----------------------------------


def browser_consent(browser: requests.Session, authorize_url: str) -> str:
    """Sign in and allow, as a browser would; the Location of the final redirect."""
    login_page = browser.get(authorize_url, timeout=10)
    assert login_page.status_code == 200, login_page.text
    assert urlsplit(login_page.url).path == LOGIN
    login_form = only_form(login_page.text)
    assert set(login_form.fields) == LOGIN_FIELDS, login_form.fields
    consent_page = browser.post(
        urljoin(login_page.url, login_form.action),
        data={**login_form.fields, "username": USERNAME, "password": PASSWORD},
        timeout=10,
    )
    assert consent_page.status_code == 200, consent_page.text
    assert urlsplit(consent_page.url).path == AUTHORIZE
    consent = only_form(consent_page.text)
    assert consent.buttons == {"allow": "on"}
    answer = browser.post(
        urljoin(consent_page.url, consent.action or consent_page.url),
        data={**consent.fields, **consent.buttons},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return str(answer.headers["Location"])


class _FreshConnectionAdapter(HTTPAdapter):
    """Reads each response in full, then drops its connection. The live server closes every
    connection after answering a ``Connection: close`` request without saying so in the
    response, so a pooled connection (a redirect's next hop) could be reused after that."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        response = super().send(request, *args, **kwargs)
        _ = response.content
        self.close()
        return response


class _OneConnectionPerRequest(requests.Session):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers.update(CLOSE)
        self.mount("http://", _FreshConnectionAdapter())


class AuthlibClient(_OneConnectionPerRequest, AuthlibOAuth2Session):
    pass


class OAuthlibClient(_OneConnectionPerRequest, OAuthlibOAuth2Session):
    pass


def new_browser() -> requests.Session:
    return _OneConnectionPerRequest()


def check_live_tokens(
    token: dict[str, Any],
    *,
    live_url: str,
    web: WebClient,
    user: Any,
    nonce: str,
    scope: str,
) -> dict[str, Any]:
    """Verify both JWTs against the served JWKS and present the access token to /api/me."""
    resource_server = jwt.PyJWKClient(f"{live_url}{JWKS}")
    header = jwt.get_unverified_header(token["access_token"])
    access_key = resource_server.get_signing_key_from_jwt(token["access_token"])
    claims = jwt.decode(
        token["access_token"],
        access_key.key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=live_url,
        options={"require": ACCESS_CLAIMS},
    )
    id_key = resource_server.get_signing_key_from_jwt(token["id_token"])
    id_claims = jwt.decode(
        token["id_token"],
        id_key.key,
        algorithms=["RS256"],
        audience=web.client_id,
        issuer=live_url,
        options={"require": ID_CLAIMS},
    )
    kids = {key.key_id for key in resource_server.get_jwk_set().keys}

    assert header["typ"] == "at+jwt"
    assert header["kid"] in kids
    assert jwt.get_unverified_header(token["id_token"])["kid"] in kids
    assert claims["sub"] == str(user.pk)
    assert claims["aud"] == AUDIENCE
    assert claims["client_id"] == web.client_id
    assert claims["scope"] == scope
    assert isinstance(claims["jti"], str)
    assert claims["exp"] - claims["iat"] == 3600
    assert id_claims["sub"] == str(user.pk)
    assert id_claims["nonce"] == nonce
    assert id_claims["preferred_username"] == USERNAME
    api_me = requests.get(
        f"{live_url}/api/me",
        headers={"Authorization": f"Bearer {token['access_token']}", **CLOSE},
        timeout=10,
    )
    assert api_me.status_code == 200, api_me.text
    assert api_me.json()["id"] == user.pk
    assert api_me.json()["client_id"] == web.client_id
    return claims


def api_me_status(live_url: str, access_token: str) -> int:
    response = requests.get(
        f"{live_url}/api/me",
        headers={"Authorization": f"Bearer {access_token}", **CLOSE},
        timeout=10,
    )
    return response.status_code


@pytest.mark.parametrize("client_type", ["public", "confidential"])
def test_authlib_code_flow_with_pkce_against_the_live_server(
    live_server: Any, live_issuer: str, user: Any, client_type: str
) -> None:
    web = register(client_type, f"authlib-{client_type}", f"{live_issuer}/callback")
    scope = "openid profile"
    nonce = secrets.token_urlsafe(16)
    session = AuthlibClient(
        web.client_id,
        web.secret,
        scope=scope,
        redirect_uri=web.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none" if web.is_public else "client_secret_basic",
    )
    verifier = secrets.token_urlsafe(48)
    authorize_url, state = session.create_authorization_url(
        f"{live_issuer}{AUTHORIZE}", code_verifier=verifier, nonce=nonce
    )

    location = browser_consent(new_browser(), authorize_url)
    assert location.split("?", 1)[0] == web.redirect_uri
    token = session.fetch_token(
        f"{live_issuer}{TOKEN}",
        authorization_response=location,
        state=state,
        code_verifier=verifier,
    )
    assert set(token) >= CODE_KEYS | {"id_token"}
    assert token["token_type"] == "bearer"
    assert token["scope"] == scope
    check_live_tokens(token, live_url=live_issuer, web=web, user=user, nonce=nonce, scope=scope)

    renewed = session.refresh_token(f"{live_issuer}{TOKEN}", refresh_token=token["refresh_token"])

    assert renewed["refresh_token"] != token["refresh_token"]
    assert renewed["access_token"] != token["access_token"]
    assert renewed["scope"] == scope
    assert api_me_status(live_issuer, renewed["access_token"]) == 200
    assert api_me_status(live_issuer, token["access_token"]) == 401


@pytest.mark.parametrize("client_type", ["public", "confidential"])
def test_requests_oauthlib_code_flow_with_pkce_against_the_live_server(
    live_server: Any, live_issuer: str, insecure_transport: None, user: Any, client_type: str
) -> None:
    web = register(client_type, f"oauthlib-{client_type}", f"{live_issuer}/callback")
    nonce = secrets.token_urlsafe(16)
    session = OAuthlibClient(
        web.client_id, redirect_uri=web.redirect_uri, scope=["openid", "profile"], pkce="S256"
    )
    authorize_url, state = session.authorization_url(f"{live_issuer}{AUTHORIZE}", nonce=nonce)
    assert parse_qs(urlsplit(authorize_url).query)["code_challenge_method"] == ["S256"]

    location = browser_consent(new_browser(), authorize_url)
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    token = session.fetch_token(
        f"{live_issuer}{TOKEN}",
        authorization_response=location,
        client_secret=web.secret,
        include_client_id=True,
    )
    assert set(token) >= CODE_KEYS | {"id_token"}
    assert token["token_type"] == "bearer"
    assert token["scope"] == ["openid", "profile"]
    check_live_tokens(
        token, live_url=live_issuer, web=web, user=user, nonce=nonce, scope="openid profile"
    )

    renewed = session.refresh_token(
        f"{live_issuer}{TOKEN}",
        refresh_token=token["refresh_token"],
        client_id=web.client_id,
        client_secret=web.secret,
        include_client_id=True,
    )

    assert renewed["refresh_token"] != token["refresh_token"]
    assert renewed["access_token"] != token["access_token"]
    assert api_me_status(live_issuer, renewed["access_token"]) == 200
    assert api_me_status(live_issuer, token["access_token"]) == 401


# -- 3. errors ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_code_is_single_use(user: Any, web_client: WebClient) -> None:
    browser = signed_in_browser(user)
    pkce = new_pkce()
    code = issue_code(browser, web_client, pkce)
    token_body(exchange(browser, web_client, code, pkce.verifier), with_id_token=True)

    again = exchange(browser, web_client, code, pkce.verifier)

    assert_invalid_grant(again)


@pytest.mark.django_db
@pytest.mark.parametrize(("age", "accepted"), [(-5, True), (1, False), (600, False)])
def test_code_expires_after_the_authorization_code_lifetime(
    user: Any, web_client: WebClient, age: int, accepted: bool
) -> None:
    browser = signed_in_browser(user)
    pkce = new_pkce()
    code = issue_code(browser, web_client, pkce)
    lifetime = oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS
    assert lifetime == 60

    with time_machine.travel(timezone.now() + timedelta(seconds=lifetime + age), tick=False):
        response = exchange(browser, web_client, code, pkce.verifier)

    if accepted:
        token_body(response, with_id_token=True)
    else:
        assert_invalid_grant(response)
        assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_wrong_code_verifier_is_invalid_grant(user: Any, web_client: WebClient) -> None:
    browser = signed_in_browser(user)
    pkce = new_pkce()
    code = issue_code(browser, web_client, pkce)

    response = exchange(browser, web_client, code, new_pkce().verifier)

    assert_invalid_grant(response)
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_missing_code_verifier_is_refused(user: Any, web_client: WebClient) -> None:
    browser = signed_in_browser(user)
    pkce = new_pkce()
    code = issue_code(browser, web_client, pkce)

    response = exchange(browser, web_client, code, None)

    assert_oauth2_error(response, 400, "invalid_request", "Code verifier required.")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "redirect_uri",
    [OTHER_CALLBACK, "https://attacker.example.com/callback", CALLBACK + "/"],
    ids=["other-registered", "unregistered", "trailing-slash"],
)
def test_redirect_uri_mismatch_at_the_token_endpoint_is_refused(
    user: Any, web_client: WebClient, redirect_uri: str
) -> None:
    browser = signed_in_browser(user)
    pkce = new_pkce()
    code = issue_code(browser, web_client, pkce)

    response = exchange(browser, web_client, code, pkce.verifier, redirect_uri=redirect_uri)

    assert_oauth2_error(response, 400, "invalid_request", "Mismatching redirect URI.")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://attacker.example.com/callback",
        CALLBACK + "/extra",
        CALLBACK + "?next=https://attacker.example.com",
        "https://client.example.com.attacker.example.com/callback",
    ],
    ids=["other-host", "longer-path", "added-query", "host-suffix"],
)
def test_unregistered_redirect_uri_at_authorize_is_an_error_page_not_a_redirect(
    user: Any, web_client: WebClient, redirect_uri: str
) -> None:
    browser = signed_in_browser(user)
    query = authorize_query(web_client, new_pkce(), redirect_uri=redirect_uri)

    response = browser.get(AUTHORIZE, query)

    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("text/html")
    assert not response.has_header("Location")
    html = response.content.decode()
    assert "This sign-in request cannot be completed" in html
    assert "<form" not in html
    assert not Grant.objects.exists()


@pytest.mark.django_db
def test_public_client_without_code_challenge_is_redirected_with_invalid_request(
    user: Any, public_client: WebClient
) -> None:
    browser = signed_in_browser(user)
    query = authorize_query(public_client, None)

    params = callback_params(browser.get(AUTHORIZE, query), CALLBACK)

    assert_error_redirect(params, "invalid_request")


@pytest.mark.django_db
def test_plain_code_challenge_method_is_refused(user: Any, public_client: WebClient) -> None:
    browser = signed_in_browser(user)
    verifier = secrets.token_urlsafe(48)
    query = authorize_query(
        public_client, None, code_challenge=verifier, code_challenge_method="plain"
    )
    authorize_url = f"{AUTHORIZE}?{urlencode(query)}"

    answer = browser.get(authorize_url)
    if answer.status_code == 200:  # refused when the user allows, before a code is issued
        consent = only_form(answer.content.decode())
        answer = browser.post(authorize_url, {**consent.fields, **consent.buttons})
    params = callback_params(answer, CALLBACK)

    assert_error_redirect(params, "invalid_request")
    assert not Grant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["admin", "openid admin"])
def test_unknown_scope_at_authorize_redirects_with_invalid_scope(
    user: Any, web_client: WebClient, scope: str
) -> None:
    browser = signed_in_browser(user)
    query = authorize_query(web_client, new_pkce(), scope=scope)

    params = callback_params(browser.get(AUTHORIZE, query), CALLBACK)

    assert_error_redirect(params, "invalid_scope")


@pytest.mark.django_db
def test_json_body_at_the_token_endpoint_is_a_json_400(user: Any, web_client: WebClient) -> None:
    browser = signed_in_browser(user)
    pkce = new_pkce()
    code = issue_code(browser, web_client, pkce)
    payload = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": pkce.verifier,
        "client_id": web_client.client_id,
    }
    extra = {}
    if web_client.secret is not None:
        extra["HTTP_AUTHORIZATION"] = basic(web_client.client_id, web_client.secret)

    response = browser.post(TOKEN, json.dumps(payload), content_type="application/json", **extra)

    assert_oauth2_error(response, 400, "unsupported_grant_type", "Unsupported grant type")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("thief_type", ["public", "confidential"])
def test_code_of_one_client_is_refused_to_another(
    user: Any, public_client: WebClient, thief_type: str
) -> None:
    browser = signed_in_browser(user)
    thief = register(thief_type, "thief", CALLBACK)
    pkce = new_pkce()
    code = issue_code(browser, public_client, pkce)

    response = exchange(browser, thief, code, pkce.verifier)

    assert_invalid_grant(response)
    assert not AccessToken.objects.exists()
    # The code is still its client's.
    token_body(exchange(browser, public_client, code, pkce.verifier), with_id_token=True)


# -- 4. refresh ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_refresh_rotates_the_refresh_token(user: Any, web_client: WebClient) -> None:
    browser = signed_in_browser(user)
    first = obtain_tokens(browser, web_client)

    second = token_body(refresh(browser, web_client, first["refresh_token"]), with_id_token=True)
    third = token_body(refresh(browser, web_client, second["refresh_token"]), with_id_token=True)

    tokens = [first, second, third]
    assert len({body["refresh_token"] for body in tokens}) == 3
    assert len({body["access_token"] for body in tokens}) == 3
    assert all(body["scope"] == "openid profile read" for body in tokens)
    jwks = served_jwks(browser)
    claims = verify_access_token(third["access_token"], jwks, issuer=ISSUER)
    assert claims["sub"] == str(user.pk)
    assert claims["scope"] == "openid profile read"
    id_claims = verify_id_token(
        third["id_token"], jwks, client_id=web_client.client_id, issuer=ISSUER
    )
    assert id_claims["sub"] == str(user.pk)
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1
    assert AccessToken.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("narrower", ["profile", "openid read"])
def test_refresh_with_a_narrower_scope_is_granted_narrower(
    user: Any, web_client: WebClient, narrower: str
) -> None:
    browser = signed_in_browser(user)
    first = obtain_tokens(browser, web_client)

    body = token_body(
        refresh(browser, web_client, first["refresh_token"], scope=narrower),
        with_id_token="openid" in narrower.split(),
    )

    assert body["scope"] == narrower
    claims = verify_access_token(body["access_token"], served_jwks(browser), issuer=ISSUER)
    assert claims["scope"] == narrower


@pytest.mark.django_db
@pytest.mark.parametrize("broader", ["openid profile read write", "email"])
def test_refresh_with_a_broader_scope_is_invalid_scope(
    user: Any, web_client: WebClient, broader: str
) -> None:
    browser = signed_in_browser(user)
    first = obtain_tokens(browser, web_client)

    response = refresh(browser, web_client, first["refresh_token"], scope=broader)

    assert_oauth2_error(response, 400, "invalid_scope", "Invalid scope")
    # Nothing was rotated: the refresh token still works.
    token_body(refresh(browser, web_client, first["refresh_token"]), with_id_token=True)


@pytest.mark.django_db
def test_refresh_token_of_another_client_is_refused(
    user: Any, public_client: WebClient, confidential_client: WebClient
) -> None:
    browser = signed_in_browser(user)
    first = obtain_tokens(browser, public_client)

    response = refresh(browser, confidential_client, first["refresh_token"])

    assert_invalid_grant(response)
    token_body(refresh(browser, public_client, first["refresh_token"]), with_id_token=True)


@pytest.mark.django_db(transaction=True)
def test_retry_within_the_grace_supersedes_the_successor_and_its_reuse_revokes_the_family(
    user: Any, web_client: WebClient, django_assert_num_queries: Any
) -> None:
    browser = signed_in_browser(user)
    first = obtain_tokens(browser, web_client)
    rotated_at = timezone.now()
    with time_machine.travel(rotated_at, tick=False):
        successor = token_body(
            refresh(browser, web_client, first["refresh_token"]), with_id_token=True
        )
    retry_at = rotated_at + timedelta(seconds=token_settings.REFRESH_REUSE_GRACE - 2)

    with time_machine.travel(retry_at, tick=False):
        retried = token_body(
            refresh(browser, web_client, first["refresh_token"]), with_id_token=True
        )

    assert retried["refresh_token"] not in (first["refresh_token"], successor["refresh_token"])
    assert retried["access_token"] != successor["access_token"]
    assert retried["scope"] == successor["scope"]
    assert me(browser, retried["access_token"]).status_code == 200
    assert_refused_by_api_me(browser, successor["access_token"])
    assert_jwt_authentication_refuses_without_a_query(
        successor["access_token"], django_assert_num_queries
    )

    # The superseded successor presented again is reuse: the whole family goes.
    assert_invalid_grant(refresh(browser, web_client, successor["refresh_token"]))
    assert_invalid_grant(refresh(browser, web_client, retried["refresh_token"]))
    assert_refused_by_api_me(browser, retried["access_token"])
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("after_grace", ["time-travel", "no-grace"])
def test_rotated_token_after_the_grace_revokes_the_family_and_its_access_token(
    user: Any, web_client: WebClient, django_assert_num_queries: Any, after_grace: str
) -> None:
    browser = signed_in_browser(user)
    tokens = dict(settings.DJANGO_TOKENS)
    if after_grace == "no-grace":
        tokens["REFRESH_REUSE_GRACE"] = 0
    with override_settings(DJANGO_TOKENS=tokens):
        first = obtain_tokens(browser, web_client)
        live = token_body(refresh(browser, web_client, first["refresh_token"]), with_id_token=True)
        assert me(browser, live["access_token"]).status_code == 200
        dot_before = dot_protected(live["access_token"]).status_code

        if after_grace == "time-travel":
            assert token_settings.REFRESH_REUSE_GRACE == 10
            later = timezone.now() + timedelta(seconds=token_settings.REFRESH_REUSE_GRACE + 2)
            with time_machine.travel(later, tick=False):
                reuse = refresh(browser, web_client, first["refresh_token"])
        else:
            reuse = refresh(browser, web_client, first["refresh_token"])

        assert_invalid_grant(reuse)
        assert_invalid_grant(refresh(browser, web_client, live["refresh_token"]))
        assert_refused_by_api_me(browser, live["access_token"])
        assert_jwt_authentication_refuses_without_a_query(
            live["access_token"], django_assert_num_queries
        )
        assert not AccessToken.objects.exists()
        assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
        # django-oauth-toolkit's own authentication class agrees, before and after.
        assert (dot_before, dot_protected(live["access_token"]).status_code) == (200, 401)


# -- 5. revocation marks ------------------------------------------------------------------


@pytest.mark.django_db
def test_dot_oauth2_authentication_accepts_a_live_access_token_and_refuses_an_id_token(
    user: Any, web_client: WebClient
) -> None:
    body = obtain_tokens(signed_in_browser(user), web_client)

    accepted = dot_protected(body["access_token"])
    refused = dot_protected(body["id_token"])

    assert accepted.status_code == 200
    assert accepted.data == {"user": user.pk, "scope": "openid profile read"}
    assert refused.status_code == 401


@pytest.mark.django_db(transaction=True)
def test_previous_access_token_is_refused_after_a_refresh(
    user: Any, web_client: WebClient, django_assert_num_queries: Any
) -> None:
    browser = signed_in_browser(user)
    first = obtain_tokens(browser, web_client)
    assert me(browser, first["access_token"]).status_code == 200
    dot_before = dot_protected(first["access_token"]).status_code

    second = token_body(refresh(browser, web_client, first["refresh_token"]), with_id_token=True)

    assert not AccessToken.objects.filter(
        token_checksum=hashlib.sha256(first["access_token"].encode()).hexdigest()
    ).exists()
    assert_refused_by_api_me(browser, first["access_token"])
    assert_jwt_authentication_refuses_without_a_query(
        first["access_token"], django_assert_num_queries
    )
    assert me(browser, second["access_token"]).status_code == 200
    # django-oauth-toolkit's own authentication class agrees, before and after.
    assert (dot_before, dot_protected(first["access_token"]).status_code) == (200, 401)
    accepted = dot_protected(second["access_token"])
    assert accepted.status_code == 200
    assert accepted.data == {"user": user.pk, "scope": "openid profile read"}


@pytest.mark.django_db(transaction=True)
def test_deactivating_the_user_revokes_the_access_and_refresh_tokens(
    user: Any, web_client: WebClient, django_assert_num_queries: Any
) -> None:
    browser = signed_in_browser(user)
    body = obtain_tokens(browser, web_client)
    assert me(browser, body["access_token"]).status_code == 200
    dot_before = dot_protected(body["access_token"]).status_code

    user.is_active = False
    user.save()

    assert_refused_by_api_me(browser, body["access_token"])
    assert_jwt_authentication_refuses_without_a_query(
        body["access_token"], django_assert_num_queries
    )
    dot_after = dot_protected(body["access_token"]).status_code
    assert_invalid_grant(refresh(browser, web_client, body["refresh_token"]))
    # Reactivation does not bring the tokens back.
    user.is_active = True
    user.save()
    assert_refused_by_api_me(browser, body["access_token"])
    assert_invalid_grant(refresh(browser, web_client, body["refresh_token"]))
    # django-oauth-toolkit's own authentication class agrees, before and after.
    assert (dot_before, dot_after) == (200, 401)


@pytest.mark.django_db(transaction=True)
def test_deleting_the_application_revokes_its_access_and_refresh_tokens(
    user: Any, web_client: WebClient, django_assert_num_queries: Any
) -> None:
    browser = signed_in_browser(user)
    body = obtain_tokens(browser, web_client)
    assert me(browser, body["access_token"]).status_code == 200
    dot_before = dot_protected(body["access_token"]).status_code

    web_client.application.delete()

    assert_refused_by_api_me(browser, body["access_token"])
    assert_jwt_authentication_refuses_without_a_query(
        body["access_token"], django_assert_num_queries
    )
    assert_oauth2_error(
        refresh(browser, web_client, body["refresh_token"]), 401, "invalid_client", "Invalid client"
    )
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.exists()
    # django-oauth-toolkit's own authentication class agrees, before and after.
    assert (dot_before, dot_protected(body["access_token"]).status_code) == (200, 401)


@pytest.mark.django_db(transaction=True)
def test_tokens_of_other_users_and_clients_stay_valid_after_a_revocation(
    user: Any, django_user_model: Any, public_client: WebClient, confidential_client: WebClient
) -> None:
    django_user_model.objects.create_user(username="bob", password="bob-password")
    alice_public = obtain_tokens(signed_in_browser(user), public_client)
    alice_confidential = obtain_tokens(signed_in_browser(user), confidential_client)
    bob_browser = signed_in_browser(django_user_model.objects.get(username="bob"))
    bob_pkce = new_pkce()
    bob_code = issue_code(bob_browser, confidential_client, bob_pkce)
    bob = token_body(
        exchange(bob_browser, confidential_client, bob_code, bob_pkce.verifier),
        with_id_token=True,
    )

    public_client.application.delete()

    browser = Client()
    assert_refused_by_api_me(browser, alice_public["access_token"])
    assert me(browser, alice_confidential["access_token"]).status_code == 200
    assert me(browser, bob["access_token"]).status_code == 200
