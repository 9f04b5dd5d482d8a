"""Every endpoint that takes a token refuses hostile ones (RFC 8725; RFC 9700 §4): with its
documented refusal, never a 500, never a database write or an audit row, never a request to
a URL the token names.

Two tables drive the suite: ``forgery.FORGERIES`` (named forgers, each deriving one hostile
token from a genuine one) and ``ENDPOINTS`` (how each endpoint is given a token and what its
refusal looks like). Every forgery of the kind an endpoint takes is presented to it. The
genuine tokens come from the real endpoints, once per module: a password login, an API-key
assertion exchange, the OAuth 2.0 code flow; each endpoint is shown to accept its genuine
token, and, where it verifies signatures, the genuine token re-signed by the forgers' own
signing code, so that each forgery fails on what it changes alone. A third table presents
genuine tokens of one service where another kind is expected (``CROSS_SERVICE``). Then: a
revoked OAuth 2.0 token respelled, ``id_token_hint`` at the authorization endpoint (the only
endpoint that takes one), and raw requests through gunicorn (PostgreSQL + Redis only).

About 1,760 cases; each is one request (a few milliseconds) plus two row counts, so the
module takes about 40 s of CPU on SQLite, a third of it the test database's migrations.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlparse

import jwt
import pytest
import requests
from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import AccessToken
from oauth2_provider.models import RefreshToken as OAuthRefreshToken

from django_tokens import api_keys, keystore, sessions
from django_tokens.api_keys import IssuedSecret
from django_tokens.conf import token_settings
from django_tokens.models import AuditEvent, SigningKey
from tests import forgery
from tests.forgery import ACCESS, ASSERTION, REFRESH, Attacker, Forgery, Genuine, OtherKey
from tests.test_multiprocess import (
    CLOSE,
    STARTUP_TIMEOUT,
    Server,
    _start,
    _stop,
    _wait_until_answering,
)
from tests.test_oauth2_endpoints import obtain_tokens, web_client
from tests.test_oauth2_token import OAuthClient, basic, envelope

pytestmark = pytest.mark.django_db

ISSUER = settings.DJANGO_TOKENS["ISSUER"]
CREDENTIALS_REFUSED = {"error": "invalid_credentials", "message": "Missing or invalid credentials"}
REFRESH_JWT_REFUSED = {
    "error": "invalid_grant",
    "message": "Wrong or expired refresh token, or user/api-key removed",
}
PASSWORD_REFRESH_REFUSED = {
    "error": "invalid_grant",
    "message": "The refresh token is invalid, expired or revoked.",
}
PASSWORD_REFRESH_MALFORMED = {
    "error": "invalid_request",
    "message": "'refresh_token' is malformed.",
}
LOGOUT_MESSAGES = {
    "The access token is missing, invalid, expired or revoked.",
    "The access token belongs to no session.",
    "The access token belongs to no live session of this service.",
}
USERINFO_REFUSED = envelope(
    "invalid_token", "The access token is missing, invalid, expired or revoked.", 401
)
INACTIVE = {"active": False}
#: README "Errors": a field over 4096 characters, or with NUL, is a malformed request.
MAX_FIELD_LENGTH = 4096
_SURROGATE = re.compile("[\ud800-\udfff]")
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|MERGE|TRUNCATE)\b", re.IGNORECASE)


# -- the genuine tokens, made once per module ----------------------------------------------


@dataclass
class World:
    """Users, keys and genuine tokens from the real endpoints, committed for the module."""

    attacker: Attacker
    signing: keystore.LoadedKey
    next_kid: str
    #: The key the assertions are signed with; it has opened no session before a test.
    api_key: IssuedSecret
    #: The key that opened the module's API-key sessions.
    session_key: IssuedSecret
    revoked_key: IssuedSecret
    bobs_key: IssuedSecret
    oauth_app: OAuthClient
    password: dict[str, Any]
    api_key_tokens: dict[str, Any]
    login_tokens: dict[str, Any]
    oauth: dict[str, Any]
    revoked_session: dict[str, Any]
    revoked_oauth: dict[str, Any]
    revoked_oauth_expiry: datetime
    tokens: dict[str, str] = field(default_factory=dict)
    #: The keystore's in-process state, carried from test to test as a server process
    #: carries it from request to request (each test starts with it reset).
    keystore_state: tuple[Any, float] = (None, 0.0)

    def keystore_genuine(self, token: str, kind: str) -> Genuine:
        return Genuine(
            token=token,
            kind=kind,
            algorithm=self.signing.algorithm,
            key=self.signing.private_key,
            keystore_public_key=self.signing.public_key,
            attacker=self.attacker,
            others={"next key": OtherKey(self.next_kid)},
        )

    def assertion(self) -> Genuine:
        """A fresh assertion for the API key, as a client script signs it; its signature has
        a ``-`` or ``_``, so that the alphabet forgery has something to change."""
        while True:
            now = int(time.time())
            token = jwt.encode(
                {"iat": now, "exp": now + 120, "jti": uuid.uuid4().hex},
                self.api_key.secret,
                algorithm="HS256",
                headers={"kid": self.api_key.api_key.key_id},
            )
            if set(token.rpartition(".")[2]) & {"-", "_"}:
                break
        return Genuine(
            token=token,
            kind=ASSERTION,
            algorithm="HS256",
            key=self.api_key.secret.encode(),
            keystore_public_key=self.signing.public_key,
            attacker=self.attacker,
            others={
                "revoked key": OtherKey(
                    self.revoked_key.api_key.key_id, self.revoked_key.secret.encode()
                ),
                "another user's key": OtherKey(self.bobs_key.api_key.key_id),
            },
        )

    def restore(self) -> None:
        """Put back what each test starts without: the keystore's loaded keys and its
        version stamp, and the revocation marks of the module's revoked session and OAuth
        2.0 token (each test starts with an empty cache)."""
        snapshot, keystore._last_unknown_kid_reload = self.keystore_state
        keystore._snapshot = snapshot
        caches[token_settings.CACHE_ALIAS].set(keystore.VERSION_CACHE_KEY, snapshot.version, None)
        now = datetime.now(UTC)
        sessions.set_marks([self.revoked_session["session_state"]], now=now)
        checksum = sessions.token_checksum(self.revoked_oauth["access_token"])
        sessions.set_token_marks({checksum: self.revoked_oauth_expiry}, now=now)


def _assertion_for(issued: IssuedSecret) -> str:
    now = int(time.time())
    return jwt.encode(
        {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
        issued.secret,
        algorithm="HS256",
        headers={"kid": issued.api_key.key_id},
    )


def _json_ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def _build_world(attacker: Attacker, django_user_model: Any) -> World:
    client = Client()
    alice = django_user_model.objects.create_user(
        username="alice", password="alice-password", email="alice@example.com"
    )
    bob = django_user_model.objects.create_user(
        username="bob", password="bob-password", email="bob@example.com"
    )
    password = _json_ok(
        client.post(
            "/api/token",
            {"username": "alice", "password": "alice-password"},
            content_type="application/json",
        )
    )
    api_key = api_keys.issue(alice, name="assertions")
    session_key = api_keys.issue(alice, name="sessions")
    revoked_key = api_keys.issue(alice, name="revoked")
    bobs_key = api_keys.issue(bob, name="bob's")

    def exchange(issued: IssuedSecret) -> dict[str, Any]:
        token = _assertion_for(issued)
        return _json_ok(client.post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {token}"))

    api_key_tokens = exchange(session_key)
    revoked_session = exchange(session_key)
    assert sessions.revoke_session(revoked_session["session_state"])
    api_keys.revoke(revoked_key.api_key.key_id)
    login_tokens = _json_ok(
        client.post(
            "/auth/login",
            {"email": "alice@example.com", "password": "alice-password"},
            content_type="application/json",
        )
    )
    oauth_app = web_client("Adversary's target")
    oauth = obtain_tokens(client, alice, oauth_app)
    bobs_oauth = obtain_tokens(client, bob, oauth_app)
    revoked_oauth = obtain_tokens(client, alice, oauth_app)
    revoked_expiry = AccessToken.objects.get(
        token_checksum=sessions.token_checksum(revoked_oauth["access_token"])
    ).expires
    revoked = client.post(
        "/oauth2/revoke",
        urlencode({"token": revoked_oauth["access_token"]}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic(oauth_app.client_id, oauth_app.secret),
    )
    assert revoked.status_code == 200, revoked.content
    signing = keystore.signing_key()
    next_kid = SigningKey.objects.get(state=SigningKey.State.NEXT).kid
    world = World(
        attacker=attacker,
        signing=signing,
        next_kid=next_kid,
        api_key=api_key,
        session_key=session_key,
        revoked_key=revoked_key,
        bobs_key=bobs_key,
        oauth_app=oauth_app,
        password=password,
        api_key_tokens=api_key_tokens,
        login_tokens=login_tokens,
        oauth=oauth,
        revoked_session=revoked_session,
        revoked_oauth=revoked_oauth,
        revoked_oauth_expiry=revoked_expiry,
    )
    world.tokens = {
        "password access token": password["access_token"],
        "password refresh token": password["refresh_token"],
        "API-key access token": api_key_tokens["access_token"],
        "API-key refresh JWT": api_key_tokens["refresh_token"],
        "API-key ID token": api_key_tokens["id_token"],
        "login access token": login_tokens["access_token"],
        "login ID token": login_tokens["id_token"],
        "OAuth access token": oauth["access_token"],
        "OAuth refresh token": oauth["refresh_token"],
        "OAuth ID token": oauth["id_token"],
        "bob's OAuth ID token": bobs_oauth["id_token"],
        "revoked session's access token": revoked_session["access_token"],
        "revoked session's refresh JWT": revoked_session["refresh_token"],
        "revoked OAuth access token": revoked_oauth["access_token"],
        "revoked OAuth refresh token": revoked_oauth["refresh_token"],
    }
    return world


@pytest.fixture(scope="module")
def module_world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """The module's world, committed; flushed away afterwards, as a transactional test's
    data is."""
    from django.contrib.auth import get_user_model

    with django_db_blocker.unblock(), forgery.attacker_site() as attacker:
        keystore.reset()
        try:
            world = _build_world(attacker, get_user_model())
            keystore.reset()
            keystore.signing_key()
            world.keystore_state = (keystore._snapshot, keystore._last_unknown_kid_reload)
            yield world
        finally:
            keystore.reset()
            call_command("flush", verbosity=0, interactive=False)
    assert attacker.requests == []


@pytest.fixture
def world(module_world: World) -> Iterator[World]:
    """The module's world with its revocation marks in this test's cache. No test may make
    the service fetch anything from the attacker's server."""
    module_world.restore()
    yield module_world
    if keystore._snapshot is not None:
        module_world.keystore_state = (keystore._snapshot, keystore._last_unknown_kid_reload)
    assert module_world.attacker.requests == []


# -- presenting tokens ---------------------------------------------------------------------


def header_value(token: str) -> str:
    """What a WSGI server hands Django for a header carrying the token's UTF-8 bytes: each
    byte as one Latin-1 character (PEP 3333)."""
    return token.encode("utf-8", "surrogatepass").decode("latin-1")


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {header_value(token)}"}


def form(fields: dict[str, str]) -> str:
    return "&".join(
        f"{name}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for name, value in fields.items()
    )


def post_form(client: Client, path: str, fields: dict[str, str], **extra: Any) -> Any:
    return client.post(
        path, form(fields), content_type="application/x-www-form-urlencoded", **extra
    )


def post_json(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json")


def client_basic(world: World) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": basic(world.oauth_app.client_id, world.oauth_app.secret)}


Present = Callable[[Client, str, World], Any]


def _me(client: Client, token: str, world: World) -> Any:
    return client.get("/api/me", **bearer(token))


def _password_logout(client: Client, token: str, world: World) -> Any:
    return client.post("/api/token/logout", **bearer(token))


def _api_key_logout(client: Client, token: str, world: World) -> Any:
    return client.post("/auth/logout", **bearer(token))


def _userinfo(client: Client, token: str, world: World) -> Any:
    return client.get("/oauth2/userinfo", **bearer(token))


def _introspect(client: Client, token: str, world: World) -> Any:
    return post_form(client, "/oauth2/introspect", {"token": token}, **client_basic(world))


def _revoke(client: Client, token: str, world: World) -> Any:
    return post_form(client, "/oauth2/revoke", {"token": token}, **client_basic(world))


def _api_key_exchange(client: Client, token: str, world: World) -> Any:
    return client.post("/auth/api-key", **bearer(token))


def _api_key_refresh(client: Client, token: str, world: World) -> Any:
    return post_json(client, "/auth/refresh", {"refresh_token": token})


def _password_refresh(client: Client, token: str, world: World) -> Any:
    return post_json(client, "/api/token/refresh", {"refresh_token": token})


def _oauth_refresh(client: Client, token: str, world: World) -> Any:
    fields = {"grant_type": "refresh_token", "refresh_token": token}
    return post_form(client, "/oauth2/token", fields, **client_basic(world))


# -- refusals, as README "Errors" and the RFCs document them -------------------------------


def _json(response: Any) -> Any:
    assert response["Content-Type"] == "application/json", response.content[:300]
    return response.json()


def drf_refusal(response: Any, token: str) -> None:
    """DRF's 401 from ``JWTAuthentication``, with its challenge."""
    assert response.status_code == 401, response.content[:300]
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    body = _json(response)
    assert isinstance(body, dict)
    assert isinstance(body["detail"], str)
    assert body["detail"]


def logout_refusal(response: Any, token: str) -> None:
    assert response.status_code == 401, response.content[:300]
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response["Cache-Control"] == "no-store"
    body = _json(response)
    assert set(body) == {"error", "message"}
    assert body["error"] == "invalid_token"
    assert body["message"] in LOGOUT_MESSAGES


def userinfo_refusal(response: Any, token: str) -> None:
    """RFC 6750 §3: 401 with a Bearer challenge, in the seed's dual envelope."""
    assert response.status_code == 401, response.content[:300]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _json(response) == USERINFO_REFUSED


def inactive(response: Any, token: str) -> None:
    """RFC 7662 §2.2: a token that is not active, whatever the reason, is ``active: false``."""
    assert response.status_code == 200, response.content[:300]
    assert response["Cache-Control"] == "no-store"
    assert _json(response) == INACTIVE


def revocation_ignored(response: Any, token: str) -> None:
    """RFC 7009 §2.2: an invalid token is answered 200, with nothing revoked (the caller
    checks that nothing was written)."""
    assert response.status_code == 200, response.content[:300]
    assert response.content == b""


def assertion_refusal(response: Any, token: str) -> None:
    assert response.status_code == 401, response.content[:300]
    assert response["Cache-Control"] == "no-store"
    assert _json(response) == CREDENTIALS_REFUSED


def refresh_jwt_refusal(response: Any, token: str) -> None:
    assert response.status_code == 401, response.content[:300]
    assert response["Cache-Control"] == "no-store"
    assert _json(response) == REFRESH_JWT_REFUSED


def password_refresh_refusal(response: Any, token: str) -> None:
    """401 ``invalid_grant``; 400 ``invalid_request`` for what README "Errors" calls a
    malformed field (over 4096 characters, NUL, or text no UTF-8 can carry)."""
    malformed = len(token) > MAX_FIELD_LENGTH or "\x00" in token or _SURROGATE.search(token)
    expected = (400, PASSWORD_REFRESH_MALFORMED) if malformed else (401, PASSWORD_REFRESH_REFUSED)
    assert response.status_code == expected[0], response.content[:300]
    assert response["Cache-Control"] == "no-store"
    assert _json(response) == expected[1]


def oauth_refresh_refusal(response: Any, token: str) -> None:
    """RFC 6749 §5.2: 400 ``invalid_grant`` in the dual envelope; ``invalid_request`` for
    a parameter holding NUL, which is malformed whatever it is."""
    assert response.status_code == 400, response.content[:300]
    assert response["Cache-Control"] == "no-store"
    body = _json(response)
    code = "invalid_request" if "\x00" in token else "invalid_grant"
    assert body == envelope(code, body["error_description"], 400)


# -- acceptance of the genuine token -------------------------------------------------------


def accepted_200(response: Any, token: str) -> None:
    assert response.status_code == 200, response.content[:300]


def accepted_204(response: Any, token: str) -> None:
    assert response.status_code == 204, response.content[:300]


def active(response: Any, token: str) -> None:
    assert response.status_code == 200, response.content[:300]
    assert response.json()["active"] is True


def revoked(response: Any, token: str) -> None:
    """200, and django-oauth-toolkit no longer holds the token."""
    assert response.status_code == 200, response.content[:300]
    checksum = sessions.token_checksum(token)
    assert not AccessToken.objects.filter(token_checksum=checksum).exists()


# -- the endpoints -------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """An endpoint that takes a token: how to present one, what its refusal is, and which
    genuine token its forgeries start from (``forged_from``) and it accepts (``accepts``)."""

    name: str
    kind: str
    forged_from: str
    present: Present
    refused: Callable[[Any, str], None]
    accepted: Callable[[Any, str], None]
    accepts: str = ""
    #: True when it accepts any token with a good signature, not only the exact string it
    #: stored (so that the genuine token, re-signed by the forgers' code, is accepted too).
    verifies_signatures: bool = True
    #: Opaque refresh tokens it also gets, forged with ``OPAQUE_FORGERIES``.
    opaque: bool = False

    @property
    def genuine_name(self) -> str:
        return self.accepts or self.forged_from


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET /api/me (password)", ACCESS, "password access token", _me, drf_refusal, accepted_200
    ),
    Endpoint(
        "GET /api/me (API key)", ACCESS, "API-key access token", _me, drf_refusal, accepted_200
    ),
    Endpoint("GET /api/me (OAuth)", ACCESS, "OAuth access token", _me, drf_refusal, accepted_200),
    Endpoint(
        "POST /api/token/logout",
        ACCESS,
        "password access token",
        _password_logout,
        logout_refusal,
        accepted_204,
    ),
    Endpoint(
        "POST /auth/logout",
        ACCESS,
        "API-key access token",
        _api_key_logout,
        logout_refusal,
        accepted_204,
    ),
    Endpoint(
        "GET /oauth2/userinfo",
        ACCESS,
        "OAuth access token",
        _userinfo,
        userinfo_refusal,
        accepted_200,
        verifies_signatures=False,
    ),
    Endpoint(
        "POST /oauth2/introspect",
        ACCESS,
        "OAuth access token",
        _introspect,
        inactive,
        active,
        verifies_signatures=False,
    ),
    Endpoint(
        "POST /oauth2/introspect (password)",
        ACCESS,
        "password access token",
        _introspect,
        inactive,
        active,
    ),
    Endpoint(
        "POST /oauth2/revoke",
        ACCESS,
        "OAuth access token",
        _revoke,
        revocation_ignored,
        revoked,
        verifies_signatures=False,
    ),
    Endpoint(
        "POST /auth/api-key",
        ASSERTION,
        "assertion",
        _api_key_exchange,
        assertion_refusal,
        accepted_200,
    ),
    Endpoint(
        "POST /auth/refresh",
        REFRESH,
        "API-key refresh JWT",
        _api_key_refresh,
        refresh_jwt_refusal,
        accepted_200,
    ),
    Endpoint(
        "POST /api/token/refresh",
        ACCESS,
        "password access token",
        _password_refresh,
        password_refresh_refusal,
        accepted_200,
        accepts="password refresh token",
        verifies_signatures=False,
        opaque=True,
    ),
    Endpoint(
        "POST /oauth2/token (refresh_token)",
        ACCESS,
        "OAuth access token",
        _oauth_refresh,
        oauth_refresh_refusal,
        accepted_200,
        accepts="OAuth refresh token",
        verifies_signatures=False,
        opaque=True,
    ),
]


def genuine_for(world: World, endpoint: Endpoint) -> Genuine:
    if endpoint.kind == ASSERTION:
        return world.assertion()
    return world.keystore_genuine(world.tokens[endpoint.forged_from], endpoint.kind)


def genuine_token(world: World, endpoint: Endpoint) -> str:
    if endpoint.genuine_name == "assertion":
        return world.assertion().token
    return world.tokens[endpoint.genuine_name]


# -- watching for writes -------------------------------------------------------------------


def _tables() -> list[str]:
    """The tables of this app, django-oauth-toolkit, users and Django sessions."""
    labels = ("django_tokens", "oauth2_provider", "auth", "sessions")
    return sorted(
        model._meta.db_table
        for label in labels
        for model in apps.get_app_config(label).get_models()
    )


def row_counts() -> dict[str, int]:
    tables = _tables()
    quote_name = connection.ops.quote_name
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote_name(t)})" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return dict(zip(tables, row, strict=True))


@dataclass
class Watched:
    response: Any
    writes: list[str]
    counts_before: dict[str, int]
    counts_after: dict[str, int]
    audit_before: int
    audit_after: int

    def assert_nothing_written(self) -> None:
        assert self.writes == [], self.writes
        assert self.counts_after == self.counts_before
        assert self.audit_after == self.audit_before


def watch(present: Callable[[], Any]) -> Watched:
    """Run ``present`` and record every SQL statement that writes, the row count of each
    table before and after, and the audit trail's length."""
    counts_before = row_counts()
    audit_before = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as captured:
        response = present()
    writes = [query["sql"] for query in captured.captured_queries if _WRITE.match(query["sql"])]
    return Watched(
        response, writes, counts_before, row_counts(), audit_before, AuditEvent.objects.count()
    )


# -- the genuine tokens are accepted -------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_the_genuine_token_is_accepted(client: Client, world: World, endpoint: Endpoint) -> None:
    """The baseline of the forgeries: what each one starts from works."""
    token = genuine_token(world, endpoint)

    response = endpoint.present(client, token, world)

    endpoint.accepted(response, token)


SIGNATURE_CHECKERS = [e for e in ENDPOINTS if e.verifies_signatures]


@pytest.mark.parametrize("endpoint", SIGNATURE_CHECKERS, ids=[e.name for e in SIGNATURE_CHECKERS])
def test_the_genuine_token_re_signed_by_the_forgers_is_accepted(
    client: Client, world: World, endpoint: Endpoint
) -> None:
    """The forgers' serializer and signer make tokens the endpoint takes: a forgery that
    re-signs is refused for what it changed, not for how it was signed."""
    genuine = genuine_for(world, endpoint)
    re_signed = genuine.sign(dict(genuine.header), dict(genuine.claims))

    endpoint.accepted(endpoint.present(client, re_signed, world), re_signed)


def test_the_revoked_tokens_of_the_module_are_revoked(client: Client, world: World) -> None:
    """The revoked session and OAuth 2.0 token the cross-service cases use are refused
    because they are revoked: signature and claims are good."""
    for name in ("revoked session's access token", "revoked OAuth access token"):
        token = world.tokens[name]
        header, _claims = keystore.verify(
            token,
            types={"at+jwt"},
            audience="django-tokens",
            issuer=ISSUER,
            require=("exp", "iat", "iss", "aud", "sub", "jti"),
        )
        assert header["kid"] == world.signing.kid
        drf_refusal(_me(client, token, world), token)


# -- forgeries -----------------------------------------------------------------------------


def _forgery_cases() -> list[Any]:
    cases = []
    for endpoint in ENDPOINTS:
        for case in forgery.FORGERIES:
            if endpoint.kind in case.kinds:
                cases.append(pytest.param(endpoint, case, id=f"{endpoint.name}: {case.name}"))
    return cases


@pytest.mark.parametrize(("endpoint", "case"), _forgery_cases())
def test_forgery_is_refused_without_a_write(
    client: Client, world: World, endpoint: Endpoint, case: Forgery
) -> None:
    genuine = genuine_for(world, endpoint)
    token = case.forge(genuine)
    assert token != genuine.token

    watched = watch(lambda: endpoint.present(client, token, world))

    endpoint.refused(watched.response, token)
    watched.assert_nothing_written()


OPAQUE_ENDPOINTS = [e for e in ENDPOINTS if e.opaque]


@pytest.mark.parametrize(
    ("endpoint", "forge"),
    [
        pytest.param(endpoint, forge, id=f"{endpoint.name}: {name}")
        for endpoint in OPAQUE_ENDPOINTS
        for name, forge in forgery.OPAQUE_FORGERIES.items()
    ],
)
def test_forged_opaque_refresh_token_is_refused_without_a_write(
    client: Client, world: World, endpoint: Endpoint, forge: forgery.OpaqueForge
) -> None:
    genuine = world.tokens[endpoint.genuine_name]
    token = forge(genuine)
    assert token != genuine

    watched = watch(lambda: endpoint.present(client, token, world))

    endpoint.refused(watched.response, token)
    watched.assert_nothing_written()


# -- genuine tokens of another kind or service ---------------------------------------------

_BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}

#: Endpoint -> genuine tokens that are not what it takes.
CROSS_SERVICE: dict[str, list[str]] = {
    "GET /api/me (password)": [
        "API-key ID token",
        "OAuth ID token",
        "login ID token",
        "API-key refresh JWT",
        "assertion",
        "revoked session's access token",
        "revoked OAuth access token",
    ],
    "POST /api/token/logout": [
        "API-key access token",
        "login access token",
        "OAuth access token",
        "API-key ID token",
        "API-key refresh JWT",
        "assertion",
    ],
    "POST /auth/logout": [
        "password access token",
        "OAuth access token",
        "API-key ID token",
        "OAuth ID token",
        "API-key refresh JWT",
        "revoked session's access token",
        "assertion",
    ],
    "GET /oauth2/userinfo": [
        "password access token",
        "API-key access token",
        "API-key ID token",
        "OAuth ID token",
        "API-key refresh JWT",
        "revoked OAuth access token",
        "assertion",
    ],
    "POST /oauth2/introspect": [
        "API-key ID token",
        "OAuth ID token",
        "API-key refresh JWT",
        "revoked session's access token",
        "revoked OAuth access token",
        "revoked OAuth refresh token",
        "assertion",
    ],
    "POST /auth/api-key": [
        "password access token",
        "API-key access token",
        "OAuth access token",
        "API-key ID token",
        "OAuth ID token",
        "API-key refresh JWT",
        "password refresh token",
        "revoked key's assertion",
    ],
    "POST /auth/refresh": [
        "password access token",
        "API-key access token",
        "login access token",
        "OAuth access token",
        "API-key ID token",
        "login ID token",
        "OAuth ID token",
        "password refresh token",
        "OAuth refresh token",
        "revoked session's refresh JWT",
        "assertion",
    ],
    "POST /api/token/refresh": [
        "password access token",
        "API-key refresh JWT",
        "OAuth refresh token",
        "revoked session's refresh JWT",
        "assertion",
    ],
    "POST /oauth2/token (refresh_token)": [
        "OAuth access token",
        "OAuth ID token",
        "API-key access token",
        "API-key refresh JWT",
        "password refresh token",
        "assertion",
    ],
}


def _cross_token(world: World, name: str) -> str:
    if name == "assertion":
        return world.assertion().token
    if name == "revoked key's assertion":
        return _assertion_for(world.revoked_key)
    return world.tokens[name]


@pytest.mark.parametrize(
    ("endpoint", "token_name"),
    [
        pytest.param(_BY_NAME[endpoint], name, id=f"{endpoint}: {name}")
        for endpoint, names in CROSS_SERVICE.items()
        for name in names
    ],
)
def test_genuine_token_of_another_kind_is_refused_without_a_write(
    client: Client, world: World, endpoint: Endpoint, token_name: str
) -> None:
    token = _cross_token(world, token_name)

    watched = watch(lambda: endpoint.present(client, token, world))

    endpoint.refused(watched.response, token)
    watched.assert_nothing_written()


@pytest.mark.parametrize(
    "token_name",
    ["password access token", "API-key access token", "API-key refresh JWT", "OAuth ID token"],
)
def test_revoking_a_token_that_is_no_oauth_token_revokes_nothing(
    client: Client, world: World, token_name: str
) -> None:
    """RFC 7009 §2.2: 200, and the token, not the client's, stays as valid as it was."""
    token = world.tokens[token_name]

    watched = watch(lambda: _revoke(client, token, world))

    revocation_ignored(watched.response, token)
    watched.assert_nothing_written()
    if "access" in token_name:
        accepted_200(_me(client, token, world), token)


def test_a_revoked_oauth_refresh_token_is_refused_without_a_write(
    client: Client, world: World
) -> None:
    """A refresh token revoked with its grant (RFC 7009) is not reuse of a rotated one:
    presenting it again writes nothing."""
    token = world.tokens["revoked OAuth refresh token"]

    watched = watch(lambda: _oauth_refresh(client, token, world))

    oauth_refresh_refusal(watched.response, token)
    watched.assert_nothing_written()
    assert OAuthRefreshToken.objects.filter(revoked__isnull=True).count() >= 1


# -- a revoked token cannot come back under another spelling --------------------------------

#: Spellings of one compact JWS that a lenient base64 decoder reads as the same bytes.
RESPELLINGS: dict[str, Callable[[str], str]] = {
    "padding = after the signature": lambda token: token + "=",
    "padding == after the signature": lambda token: token + "==",
    "a newline after the signature": lambda token: token + "\n",
    "a tab inside the signature": lambda token: token[:-6] + "\t" + token[-6:],
}


@pytest.mark.parametrize("respell", RESPELLINGS.values(), ids=RESPELLINGS.keys())
def test_a_revoked_oauth_access_token_is_not_revived_by_respelling_it(
    client: Client, world: World, respell: Callable[[str], str]
) -> None:
    """OAuth 2.0 access tokens are revoked by the digest of their exact string; another
    spelling of the same signature must not pass for a token nobody revoked."""
    token = respell(world.tokens["revoked OAuth access token"])

    watched = watch(lambda: _me(client, token, world))

    drf_refusal(watched.response, token)
    watched.assert_nothing_written()


# -- id_token_hint ---------------------------------------------------------------------------
#
# The only endpoint that takes an ``id_token_hint`` is ``GET /oauth2/authorize`` (OIDC Core
# §3.1.2.1). The hint must be an ID token this server signed for the client, about the
# signed-in user (expired or not); anything else is answered ``login_required``.

CALLBACK = "https://client.example.com/callback"
STATE = "s" * 16

#: Hostile hints: forgeries of the OAuth ID token, by name.
HOSTILE_HINTS = [
    "alg none, signature stripped",
    "HS256 keyed with the keystore's public key (PEM)",
    "RS256 by the attacker's key, genuine kid",
    "kid the attacker's URL",
    "jku to the attacker's JWKS",
    "x5c: the attacker's certificate",
    "crit: an unknown extension",
    "aud wrong",
    "iss wrong",
    "typ of another kind of token",
    "payload tampered",
    "padding = after the signature",
    "header nested 3,000 arrays deep (under 8 KB)",
    "validly signed, over 8 KB",
    "non-ASCII characters in the payload segment",
    "five segments, JWE-looking",
    "garbage",
]
_BY_FORGERY_NAME = {case.name: case for case in forgery.FORGERIES}


def _authorize(browser: Client, world: World, **extra: str) -> Any:
    query = {
        "response_type": "code",
        "client_id": world.oauth_app.client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid profile email",
        "state": STATE,
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "prompt": "none",
        **extra,
    }
    return browser.get(f"/oauth2/authorize?{form(query)}")


def _error_redirect(response: Any) -> str:
    """The ``error`` of a redirect back to the client, after checking its ``state``."""
    assert response.status_code == 302, response.content[:300]
    location = response["Location"]
    assert location.startswith(CALLBACK + "?"), location
    query = parse_qs(urlparse(location).query)
    assert query["state"] == [STATE]
    assert "code" not in query
    (error,) = query["error"]
    return error


@pytest.fixture
def alices_browser(django_user_model: Any) -> Client:
    browser = Client()
    browser.force_login(django_user_model.objects.get(username="alice"))
    return browser


def _oauth_id_token(world: World) -> Genuine:
    return world.keystore_genuine(world.tokens["OAuth ID token"], REFRESH)


@pytest.mark.parametrize("name", HOSTILE_HINTS)
def test_a_hostile_id_token_hint_is_login_required_without_a_write(
    world: World, alices_browser: Client, name: str
) -> None:
    hint = _BY_FORGERY_NAME[name].forge(_oauth_id_token(world))

    watched = watch(lambda: _authorize(alices_browser, world, id_token_hint=hint))

    assert _error_redirect(watched.response) == "login_required"
    watched.assert_nothing_written()


def test_another_users_id_token_as_hint_is_login_required(
    world: World, alices_browser: Client
) -> None:
    hint = world.tokens["bob's OAuth ID token"]

    response = _authorize(alices_browser, world, id_token_hint=hint)

    assert _error_redirect(response) == "login_required"


@pytest.mark.parametrize("expired", [False, True], ids=["live", "expired"])
def test_the_users_own_id_token_as_hint_passes_to_the_consent_decision(
    world: World, alices_browser: Client, expired: bool
) -> None:
    """With ``prompt=none`` no page is shown: without prior consent the answer is
    ``consent_required``, not ``login_required``; an expired ID token is still a hint."""
    genuine = _oauth_id_token(world)
    hint = genuine.token
    if expired:
        hint = genuine.with_claims(exp=int(time.time()) - 7200, iat=int(time.time()) - 10800)

    watched = watch(lambda: _authorize(alices_browser, world, id_token_hint=hint))

    assert _error_redirect(watched.response) == "consent_required"
    watched.assert_nothing_written()


def test_prompt_none_shows_no_page(world: World, alices_browser: Client) -> None:
    """Where the consent page would be, ``prompt=none`` answers ``consent_required``; the
    same request without it shows the page."""
    assert _error_redirect(_authorize(alices_browser, world)) == "consent_required"
    assert _authorize(alices_browser, world, prompt="consent").status_code == 200


# -- through a real server -------------------------------------------------------------------


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[Server]:
    """One gunicorn process on this run's database and cache (the module's tokens are
    committed, so it sees them); it may log no traceback."""
    started = _start("adversary", tmp_path)
    try:
        _wait_until_answering(started, time.monotonic() + STARTUP_TIMEOUT)
        yield started
    finally:
        _stop(started)
    assert "Traceback" not in started.log.read_text(errors="replace"), started.log_tail()


def _raw_request(
    server: Server, method: str, path: str, headers: dict[str, bytes], body: bytes
) -> requests.Response:
    return requests.request(
        method, f"{server.url}{path}", headers={**CLOSE, **headers}, data=body, timeout=30
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_hostile_requests_through_gunicorn_are_refused_without_a_write(
    world: World, server: Server
) -> None:
    """What no test client can send: raw bytes in headers, headers past the server's limit,
    megabyte bodies. Gunicorn refuses an over-long header line itself (400, before Django);
    everything else gets the endpoint's JSON refusal. Nothing is written."""
    one_megabyte = "r" * 1_000_000
    json_type = {"Content-Type": b"application/json"}
    form_type = {
        "Content-Type": b"application/x-www-form-urlencoded",
        "Authorization": basic(world.oauth_app.client_id, world.oauth_app.secret).encode(),
    }
    counts_before, audit_before = row_counts(), AuditEvent.objects.count()

    non_utf8 = _raw_request(
        server, "GET", "/api/me", {"Authorization": b"Bearer \xff\xfe.\x80.\xc3"}, b""
    )
    long_line = _raw_request(
        server, "GET", "/api/me", {"Authorization": b"Bearer " + b"a" * 20_000}, b""
    )
    exchange = _raw_request(
        server, "POST", "/auth/api-key", {"Authorization": b"Bearer " + b"e" * 8000}, b""
    )
    api_key_refresh = _raw_request(
        server,
        "POST",
        "/auth/refresh",
        json_type,
        json.dumps({"refresh_token": one_megabyte}).encode(),
    )
    password_refresh = _raw_request(
        server,
        "POST",
        "/api/token/refresh",
        json_type,
        json.dumps({"refresh_token": one_megabyte}).encode(),
    )
    oauth_refresh = _raw_request(
        server,
        "POST",
        "/oauth2/token",
        form_type,
        form({"grant_type": "refresh_token", "refresh_token": one_megabyte}).encode(),
    )
    introspection = _raw_request(
        server, "POST", "/oauth2/introspect", form_type, form({"token": one_megabyte}).encode()
    )

    assert non_utf8.status_code == 401, non_utf8.text
    assert non_utf8.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert long_line.status_code in (400, 431), long_line.text  # gunicorn's own answer
    assert exchange.status_code == 401
    assert exchange.json() == CREDENTIALS_REFUSED
    assert api_key_refresh.status_code == 401
    assert api_key_refresh.json() == REFRESH_JWT_REFUSED
    assert password_refresh.status_code == 400
    assert password_refresh.json() == PASSWORD_REFRESH_MALFORMED
    assert oauth_refresh.status_code == 400
    assert oauth_refresh.json()["error"] == "invalid_grant"
    assert introspection.status_code == 200
    assert introspection.json() == INACTIVE
    assert row_counts() == counts_before
    assert AuditEvent.objects.count() == audit_before
