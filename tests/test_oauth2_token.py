"""``POST /oauth2/token`` with the client_credentials grant (seed 002, SPEC sections 3, 4 and 6).

Clients are django-oauth-toolkit applications created the way a user creates them (its
``createapplication`` command). Tokens are fetched with the Django test client and, against
``live_server``, with requests-oauthlib; they are verified with PyJWT's ``PyJWKClient``
against the served JWKS and presented to the example project's ``GET /api/me``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import jwt
import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import AccessToken, Application
from oauth2_provider.signals import app_authorized
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

from django_tokens.models import SigningKey
from example_project import settings as example_settings

TOKEN_PATHS = ["/oauth2/token", "/oauth2/token/"]
TOKEN_KEYS = {"access_token", "expires_in", "scope", "token_type"}
AUDIENCE = "django-tokens"
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"]
FAST_HASH_PREFIX = "django_tokens_sha256$"
#: A secret set by hand: short, and starting with "-" as createapplication users meet it.
HAND_SET_SECRET = "-hand-set-12"
#: No keep-alive: the live server's request threads close their database connections as soon
#: as each response is sent.
CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    secret: str
    application: Application


def create_application(*args: str) -> tuple[Application, str]:
    """``manage.py createapplication ARGS``: the stored application and the command's output."""
    out = io.StringIO()
    call_command("createapplication", *args, stdout=out)
    output = out.getvalue()
    name = next(arg.split("=", 1)[1] for arg in args if arg.startswith("--name="))
    return Application.objects.get(name=name), output


def printed_secret(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("client_secret: ")]
    return line.removeprefix("client_secret: ")


@pytest.fixture
def service_client() -> OAuthClient:
    """A confidential client_credentials client with a generated secret, shown once."""
    application, output = create_application(
        "confidential", "client-credentials", "--name=reporting-service"
    )
    return OAuthClient(application.client_id, printed_secret(output), application)


@pytest.fixture
def slow_hashers() -> Iterator[None]:
    """The example project's password hashers (PBKDF2 first), instead of the suite's MD5."""
    with override_settings(PASSWORD_HASHERS=example_settings.PASSWORD_HASHERS):
        yield


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: both parts form-urlencoded, then HTTP Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def basic_raw(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


def post_form(
    client: Client, data: dict[str, str], path: str = TOKEN_PATHS[0], **extra: Any
) -> Any:
    return client.post(path, data, **extra)


def client_credentials(
    client: Client,
    oauth_client: OAuthClient,
    *,
    auth: str = "basic",
    path: str = TOKEN_PATHS[0],
    **fields: str,
) -> Any:
    data = {"grant_type": "client_credentials", **fields}
    if auth == "basic":
        return post_form(
            client,
            data,
            path,
            HTTP_AUTHORIZATION=basic(oauth_client.client_id, oauth_client.secret),
        )
    data.update(client_id=oauth_client.client_id, client_secret=oauth_client.secret)
    return post_form(client, data, path)


def token_body(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "bearer"
    assert type(body["expires_in"]) is int
    assert body["expires_in"] == 3600
    return body


def envelope(code: str, description: str, status: int) -> dict[str, Any]:
    return {
        "error": code,
        "error_description": description,
        "meta": {"pagination": {"limit": 0, "offset": 0, "total_count": 0}},
        "errors": [{"httpcode": status, "message": description}],
    }


def assert_oauth2_error(response: Any, status: int, code: str, description: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == envelope(code, description, status)
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Basic ")
    else:
        assert not response.has_header("WWW-Authenticate")


def assert_invalid_client(response: Any) -> None:
    assert_oauth2_error(response, 401, "invalid_client", "Invalid client")


def unverified_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def active_kid() -> str:
    return SigningKey.objects.get(state=SigningKey.State.ACTIVE).kid


def me(client: Client, access_token: str) -> Any:
    return client.get("/api/me", headers={"Authorization": f"Bearer {access_token}"})


# -- issuing ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", TOKEN_PATHS)
@pytest.mark.parametrize("auth", ["basic", "form"])
def test_client_credentials_return_the_seed_token_keys(
    client: Client, service_client: OAuthClient, auth: str, path: str
) -> None:
    body = token_body(client_credentials(client, service_client, auth=auth, path=path))

    assert body["scope"] == "read"
    claims = unverified_claims(body["access_token"])
    assert claims["client_id"] == claims["sub"] == service_client.client_id


@pytest.mark.parametrize("include_client_id", [False, True], ids=["basic", "body"])
def test_requests_oauthlib_backend_client_token_verifies_against_the_served_jwks(
    live_server: Any,
    service_client: OAuthClient,
    monkeypatch: pytest.MonkeyPatch,
    include_client_id: bool,
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the live server speaks HTTP
    session = OAuth2Session(client=BackendApplicationClient(client_id=service_client.client_id))
    session.headers.update(CLOSE)
    resource_server = jwt.PyJWKClient(f"{live_server.url}/.well-known/jwks.json")

    with override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, "ISSUER": None}):
        token = session.fetch_token(
            f"{live_server.url}/oauth2/token",
            client_id=service_client.client_id,
            client_secret=service_client.secret,
            include_client_id=include_client_id,
            scope=["profile", "read"],
        )
        access_token = token["access_token"]
        header = jwt.get_unverified_header(access_token)
        signing_key = resource_server.get_signing_key_from_jwt(access_token)
        claims = jwt.decode(
            access_token,
            signing_key.key,
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=live_server.url,
            options={"require": REQUIRED_CLAIMS},
        )
        me_response = requests.get(
            f"{live_server.url}/api/me",
            headers={"Authorization": f"Bearer {access_token}", **CLOSE},
            timeout=10,
        )

    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == ["profile", "read"]
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": active_kid()}
    assert signing_key.key_id == header["kid"]
    assert claims["iss"] == live_server.url
    assert claims["sub"] == claims["client_id"] == service_client.client_id
    assert claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == token["expires_in"]
    assert claims["scope"] == "profile read"
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 32
    assert me_response.status_code == 200, me_response.text
    assert me_response.json() == {
        "client_id": service_client.client_id,
        "scope": ["profile", "read"],
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials_token_is_accepted_by_the_resource_server(
    live_server: Any, service_client: OAuthClient, auth_method: str
) -> None:
    from authlib.integrations.requests_client import OAuth2Session as AuthlibSession

    session = AuthlibSession(
        service_client.client_id,
        service_client.secret,
        token_endpoint_auth_method=auth_method,
        scope="read profile",
    )
    session.headers.update(CLOSE)
    with override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, "ISSUER": None}):
        token = session.fetch_token(
            f"{live_server.url}/oauth2/token", grant_type="client_credentials"
        )
        me_response = requests.get(
            f"{live_server.url}/api/me",
            headers={"Authorization": f"Bearer {token['access_token']}", **CLOSE},
            timeout=10,
        )
        refused = AuthlibSession(
            service_client.client_id,
            "not-the-secret",
            token_endpoint_auth_method=auth_method,
        )
        refused.headers.update(CLOSE)
        wrong = refused.post(
            f"{live_server.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=refused.client_auth,
            timeout=10,
        )

    assert token["token_type"] == "bearer"
    assert token["scope"] == "read profile"
    assert me_response.status_code == 200, me_response.text
    assert me_response.json()["client_id"] == service_client.client_id
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


@pytest.mark.django_db
def test_each_token_has_its_own_jti(client: Client, service_client: OAuthClient) -> None:
    first = token_body(client_credentials(client, service_client))["access_token"]
    second = token_body(client_credentials(client, service_client))["access_token"]

    assert unverified_claims(first)["jti"] != unverified_claims(second)["jti"]


@pytest.mark.django_db
def test_api_me_answers_a_client_token_without_a_database_query(
    client: Client, service_client: OAuthClient, django_assert_num_queries: Any
) -> None:
    body = token_body(client_credentials(client, service_client, scope="profile read"))
    assert me(client, body["access_token"]).status_code == 200  # keys loaded in this process

    with django_assert_num_queries(0):
        response = me(client, body["access_token"])

    assert response.status_code == 200, response.content
    assert response.json() == {"client_id": service_client.client_id, "scope": ["profile", "read"]}


def _access_token_reads(queries: CaptureQueriesContext) -> list[str]:
    table = AccessToken._meta.db_table
    return [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].lstrip().upper().startswith("SELECT") and f'"{table}"' in query["sql"]
    ]


@pytest.mark.django_db
def test_the_issued_token_is_not_read_back_when_nobody_listens_to_app_authorized(
    client: Client, service_client: OAuthClient
) -> None:
    """django-oauth-toolkit reads every token it issued back from its table, only to send
    ``app_authorized`` with it; with no receiver that query is skipped."""
    token_body(client_credentials(client, service_client))  # keys and client warm

    with CaptureQueriesContext(connection) as queries:
        token_body(client_credentials(client, service_client))

    assert _access_token_reads(queries) == []
    assert AccessToken.objects.filter(application=service_client.application).count() == 2


@pytest.mark.django_db
def test_app_authorized_receivers_get_the_token_just_issued(
    client: Client, service_client: OAuthClient
) -> None:
    received: list[tuple[Any, AccessToken]] = []

    def receiver(sender: Any, request: Any, token: AccessToken, **kwargs: Any) -> None:
        received.append((request, token))

    app_authorized.connect(receiver)
    try:
        with CaptureQueriesContext(connection) as queries:
            body = token_body(client_credentials(client, service_client))
    finally:
        app_authorized.disconnect(receiver)

    ((request, token),) = received
    assert request.method == "POST"
    assert token.token_checksum == hashlib.sha256(body["access_token"].encode()).hexdigest()
    assert token.application == service_client.application
    assert token.scope == "read"
    assert len(_access_token_reads(queries)) == 1


# -- scopes -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_default_scope_is_read_when_none_is_requested(
    client: Client, service_client: OAuthClient
) -> None:
    body = token_body(client_credentials(client, service_client))

    assert body["scope"] == "read"
    assert unverified_claims(body["access_token"])["scope"] == "read"


@pytest.mark.django_db
def test_default_scope_follows_the_oauth2_default_scopes_setting(
    client: Client, service_client: OAuthClient
) -> None:
    tokens = {**settings.DJANGO_TOKENS, "OAUTH2_DEFAULT_SCOPES": ["email", "write"]}
    with override_settings(DJANGO_TOKENS=tokens):
        body = token_body(client_credentials(client, service_client))

    assert body["scope"] == "email write"
    assert unverified_claims(body["access_token"])["scope"] == "email write"


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["basic", "form"])
def test_requested_scopes_are_granted(
    client: Client, service_client: OAuthClient, auth: str
) -> None:
    body = token_body(client_credentials(client, service_client, auth=auth, scope="profile read"))

    assert body["scope"] == "profile read"
    assert unverified_claims(body["access_token"])["scope"] == "profile read"


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["admin", "profile admin"])
def test_unknown_scope_is_invalid_scope(
    client: Client, service_client: OAuthClient, scope: str
) -> None:
    response = client_credentials(client, service_client, scope=scope)

    assert_oauth2_error(response, 400, "invalid_scope", "Invalid scope")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_api_me_refuses_a_client_token_without_the_profile_scope(
    client: Client, service_client: OAuthClient
) -> None:
    body = token_body(client_credentials(client, service_client))

    response = me(client, body["access_token"])

    assert response.status_code == 403, response.content


# -- client authentication errors ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["basic", "form"])
def test_wrong_secret_is_invalid_client(
    client: Client, service_client: OAuthClient, auth: str
) -> None:
    impostor = OAuthClient(service_client.client_id, "x" * 128, service_client.application)

    assert_invalid_client(client_credentials(client, impostor, auth=auth))
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["basic", "form"])
def test_unknown_client_is_invalid_client(
    client: Client, service_client: OAuthClient, auth: str
) -> None:
    stranger = OAuthClient("no-such-client", service_client.secret, service_client.application)

    assert_invalid_client(client_credentials(client, stranger, auth=auth))


@pytest.mark.django_db
@pytest.mark.parametrize("with_client_id", [False, True], ids=["nothing", "client-id-only"])
def test_missing_client_authentication_is_invalid_client(
    client: Client, service_client: OAuthClient, with_client_id: bool
) -> None:
    data = {"grant_type": "client_credentials"}
    if with_client_id:
        data["client_id"] = service_client.client_id

    assert_invalid_client(post_form(client, data))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64***",
        basic_raw(b"no-colon-at-all"),
        basic_raw(b"\xff\xfe\xfd:\xc3\x28"),
        "Basic ",
        "Basic",
    ],
    ids=["not-base64", "no-colon", "not-utf8", "empty", "scheme-only"],
)
def test_garbage_basic_header_is_invalid_client(
    client: Client, service_client: OAuthClient, authorization: str
) -> None:
    response = post_form(
        client, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=authorization
    )

    assert_invalid_client(response)


@pytest.mark.django_db
def test_client_id_without_colon_in_basic_header_is_invalid_client(
    client: Client, service_client: OAuthClient
) -> None:
    authorization = basic_raw(service_client.client_id.encode())

    response = post_form(
        client, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=authorization
    )

    assert_invalid_client(response)


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["basic", "form"])
def test_over_long_secret_is_invalid_client(
    client: Client, service_client: OAuthClient, auth: str
) -> None:
    long_secret = service_client.secret * 4096  # 512 KiB, starting with the right secret
    impostor = OAuthClient(service_client.client_id, long_secret, service_client.application)

    assert_invalid_client(client_credentials(client, impostor, auth=auth))


@pytest.mark.django_db
def test_body_over_the_upload_limit_is_invalid_request(
    client: Client, service_client: OAuthClient
) -> None:
    too_long = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    impostor = OAuthClient(service_client.client_id, too_long, service_client.application)

    response = client_credentials(client, impostor, auth="form")

    assert_oauth2_error(response, 400, "invalid_request", "The request body is too large.")


@pytest.mark.django_db
def test_too_many_form_fields_is_invalid_request(
    client: Client, service_client: OAuthClient
) -> None:
    fields = {f"field{i}": "1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}

    response = client_credentials(client, service_client, **fields)

    assert_oauth2_error(response, 400, "invalid_request", "The request body is too large.")


# -- grant and request errors -------------------------------------------------------------


@pytest.mark.django_db
def test_missing_grant_type_is_unsupported_grant_type(
    client: Client, service_client: OAuthClient
) -> None:
    response = post_form(
        client,
        {"client_id": service_client.client_id, "client_secret": service_client.secret},
    )

    assert_oauth2_error(response, 400, "unsupported_grant_type", "Unsupported grant type")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "grant_type",
    [
        "client-credentials",
        "CLIENT_CREDENTIALS",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ],
)
def test_unknown_grant_type_is_unsupported_grant_type(
    client: Client, service_client: OAuthClient, grant_type: str
) -> None:
    response = post_form(
        client,
        {"grant_type": grant_type},
        HTTP_AUTHORIZATION=basic(service_client.client_id, service_client.secret),
    )

    assert_oauth2_error(response, 400, "unsupported_grant_type", "Unsupported grant type")


@pytest.mark.django_db
def test_password_grant_is_not_offered_and_reveals_nothing_about_the_password(
    client: Client, service_client: OAuthClient, user: Any
) -> None:
    authorization = basic(service_client.client_id, service_client.secret)

    def password_grant(password: str) -> Any:
        data = {"grant_type": "password", "username": "alice", "password": password}
        return post_form(client, data, HTTP_AUTHORIZATION=authorization)

    right, wrong = password_grant("alice-password"), password_grant("not-her-password")

    for response in (right, wrong):
        assert_oauth2_error(response, 400, "unsupported_grant_type", "Unsupported grant type")
    assert right.content == wrong.content
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("fields", [{}, {"device_code": "made-up"}], ids=["no-code", "made-up"])
def test_device_code_grant_is_not_offered(
    client: Client, service_client: OAuthClient, fields: dict[str, str]
) -> None:
    data = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", **fields}

    response = post_form(
        client, data, HTTP_AUTHORIZATION=basic(service_client.client_id, service_client.secret)
    )

    assert_oauth2_error(response, 400, "unsupported_grant_type", "Unsupported grant type")


@pytest.mark.django_db
def test_authorization_code_grant_for_a_client_credentials_client_is_unauthorized_client(
    client: Client, service_client: OAuthClient
) -> None:
    data = {
        "grant_type": "authorization_code",
        "code": "a-code-this-client-cannot-have",
        "redirect_uri": "https://client.example.com/callback",
        "code_verifier": "v" * 64,
    }

    response = post_form(
        client, data, HTTP_AUTHORIZATION=basic(service_client.client_id, service_client.secret)
    )

    assert_oauth2_error(response, 403, "unauthorized_client", "Unauthorized client")


@pytest.mark.django_db
def test_client_credentials_for_an_authorization_code_client_is_unauthorized_client(
    client: Client,
) -> None:
    application, output = create_application(
        "confidential",
        "authorization-code",
        "--name=web-app",
        "--redirect-uris=https://client.example.com/callback",
    )
    web_app = OAuthClient(application.client_id, printed_secret(output), application)

    response = client_credentials(client, web_app)

    assert_oauth2_error(response, 403, "unauthorized_client", "Unauthorized client")


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_other_methods_are_405_in_the_envelope(client: Client, method: str, path: str) -> None:
    response = getattr(client, method)(path)

    assert_oauth2_error(response, 405, "invalid_request", "Use POST.")
    assert response["Allow"] == "POST"


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["basic", "body"])
def test_json_body_is_a_json_4xx_not_a_server_error(
    client: Client, service_client: OAuthClient, auth: str
) -> None:
    payload: dict[str, str] = {"grant_type": "client_credentials"}
    extra: dict[str, str] = {}
    if auth == "basic":
        extra["HTTP_AUTHORIZATION"] = basic(service_client.client_id, service_client.secret)
    else:
        payload.update(client_id=service_client.client_id, client_secret=service_client.secret)

    response = client.post(
        "/oauth2/token", json.dumps(payload), content_type="application/json", **extra
    )

    assert_oauth2_error(response, 400, "unsupported_grant_type", "Unsupported grant type")


# -- storage ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_generated_secret_is_stored_with_the_fast_hasher(service_client: OAuthClient) -> None:
    stored = Application.objects.get(pk=service_client.application.pk).client_secret

    assert len(service_client.secret) == 128
    assert stored.startswith(FAST_HASH_PREFIX)
    assert service_client.secret not in stored


@pytest.mark.django_db
def test_hand_set_short_secret_is_stored_with_the_slow_default_hasher_and_still_works(
    client: Client, slow_hashers: None
) -> None:
    application, _ = create_application(
        "confidential",
        "client-credentials",
        "--name=hand-set",
        f"--client-secret={HAND_SET_SECRET}",
    )
    hand_set = OAuthClient(application.client_id, HAND_SET_SECRET, application)

    stored = Application.objects.get(pk=application.pk).client_secret
    assert len(HAND_SET_SECRET) == 12
    assert stored.startswith("pbkdf2_sha256$")
    assert HAND_SET_SECRET not in stored
    token_body(client_credentials(client, hand_set))
    wrong = OAuthClient(application.client_id, HAND_SET_SECRET + "x", application)
    assert_invalid_client(client_credentials(client, wrong))


@pytest.mark.django_db
def test_access_token_is_stored_only_as_its_sha256(
    client: Client, service_client: OAuthClient
) -> None:
    body = token_body(client_credentials(client, service_client, scope="profile read"))
    claims = unverified_claims(body["access_token"])

    (stored,) = AccessToken.objects.all()
    assert stored.token == ""
    assert stored.token_checksum == hashlib.sha256(body["access_token"].encode()).hexdigest()
    assert stored.application_id == service_client.application.pk
    assert stored.user_id is None
    assert stored.scope == "profile read"
    assert abs(stored.expires.timestamp() - claims["exp"]) <= 2
