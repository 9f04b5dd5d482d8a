"""No secret leaves through a log line, an error report, an error body, an admin page or the
audit trail.

Each test runs real flows and their failures with ``DEBUG = False``, every logger lowered to
``DEBUG`` (SQL with its parameters included) and Django's own error mailer
(``AdminEmailHandler`` with the HTML report, which lists each frame's local variables) on the
root logger. It collects every secret it used or received — passwords right and wrong, API-key
secrets, assertions, access, refresh and ID tokens, client secrets, authorization codes, PKCE
verifiers — and, at the end, the keystore's private keys, the encryption keys and
``SECRET_KEY``; then it looks for each value, and for distinctive pieces of it (a JWT's
signature, the ends of an opaque token), in everything captured.

The admin pages are every changelist, change and history page of every registered model,
read by a superuser after the flows; the one page that shows a new secret once is the only
exception. One value may appear in SQL logging and nowhere else: an authorization code, which
django-oauth-toolkit stores as it is (single-use, short-lived, and useless without the PKCE
verifier, which is never stored or logged). The last test does the same for a gunicorn server
whose logging (the example's ``LOG_LEVEL``, gunicorn's debug and access logs) is at DEBUG.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import django
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.contrib import admin as admin_site_module
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.db import connections
from django.test import Client, override_settings
from django.urls import reverse
from django.utils.log import AdminEmailHandler
from oauth2_provider.models import Application

from django_tokens.crypto import _fernet_key, secret_box
from django_tokens.models import ApiKey, AuditEvent, SigningKey
from tests.keys import FERNET_KEY_NEW
from tests.test_multiprocess import _free_port, _test_database_url

pytestmark = pytest.mark.django_db

#: Where the error mails go: address strings since Django 6.0, (name, address) pairs before.
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
#: Loggers lowered to DEBUG for the run ("" is the root logger).
DEBUG_LOGGERS = (
    "",
    "django",
    "django.request",
    "django.security",
    "django.db.backends",
    "django_tokens",
    "oauthlib",
    "oauth2_provider",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
)
CALLBACK = "https://client.example.com/callback"
EMAIL = "alice@example.com"
#: A prefix or suffix this long of an opaque secret is as good as the secret for a search:
#: 96 bits of a random token, and no one writes such a run of characters by chance.
FRAGMENT = 16
REPO_ROOT = Path(__file__).resolve().parent.parent


def random_password(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(10)}"


def failing_claims(user: Any, *, service: str, scopes: list[str]) -> dict[str, Any]:
    """A deployment's claims hook whose back end is down: every token for a user fails."""
    raise RuntimeError("the claims back end is unreachable")


# -- what is secret, and where it must not be -----------------------------------------------


@dataclass(repr=False)
class LeakCheck:
    """The secrets of one test and the texts they must not appear in."""

    records: list[logging.LogRecord]
    #: Whether the run must have logged something (the in-process capture).
    expect_logs: bool = True
    #: needle -> what it is a piece of
    needles: dict[str, str] = field(default_factory=dict)
    #: needles that SQL logging may show: values django-oauth-toolkit stores in the clear
    in_sql: set[str] = field(default_factory=set)
    #: (where, text): response bodies, admin pages, command output
    texts: list[tuple[str, str]] = field(default_factory=list)

    # -- collecting secrets ------------------------------------------------------------------

    def secret(self, label: str, value: str, *, stored_in_clear: bool = False) -> str:
        """An opaque secret (password, API-key or client secret, code, verifier, refresh
        token): the value, and for long values its first and last characters.
        ``stored_in_clear``: a column holds it as it is, so SQL logging shows it."""
        assert value, label
        needles = {value: label}
        if len(value) >= 2 * FRAGMENT:
            needles[value[:FRAGMENT]] = f"{label} (prefix)"
            needles[value[-FRAGMENT:]] = f"{label} (suffix)"
        self.needles.update(needles)
        if stored_in_clear:
            self.in_sql.update(needles)
        return value

    def token(self, label: str, value: str) -> str:
        """A JWT: the whole token, and its signature (the part that makes it usable); the
        header and claims are not secret on their own."""
        assert value.count(".") == 2, (label, value)
        self.needles[value] = label
        signature = value.rsplit(".", 1)[1]
        self.needles[signature] = f"{label} (signature)"
        if len(signature) >= 2 * FRAGMENT:
            self.needles[signature[:FRAGMENT]] = f"{label} (signature prefix)"
        return value

    def tokens(self, label: str, body: dict[str, Any]) -> dict[str, Any]:
        """Every token in a token response."""
        for name in ("access_token", "id_token"):
            if name in body:
                self.token(f"{label} {name}", body[name])
        if "refresh_token" in body:
            value = body["refresh_token"]
            if value.count(".") == 2:
                self.token(f"{label} refresh_token", value)
            else:
                self.secret(f"{label} refresh_token", value)
        return body

    def server_secrets(self) -> None:
        """SECRET_KEY, the encryption keys (as configured and as Fernet keys) and every
        private key of the keystore, as PEM and as its base64 lines."""
        self.secret("SECRET_KEY", settings.SECRET_KEY)
        for material in settings.DJANGO_TOKENS["ENCRYPTION_KEYS"]:
            self.secret("an ENCRYPTION_KEYS entry", material)
            self.secret("an encryption key (Fernet)", _fernet_key(material).decode())
        for key in SigningKey.objects.all():
            pem = secret_box().decrypt(key.encrypted_private_key).decode()
            self.needles[pem] = f"private key {key.kid} (PEM)"
            for line in pem.splitlines():
                if not line.startswith("-----") and len(line) >= FRAGMENT:
                    self.needles[line] = f"private key {key.kid} (a PEM line)"
            private = serialization.load_pem_private_key(pem.encode(), password=None)
            if isinstance(private, rsa.RSAPrivateKey):
                d = private.private_numbers().d
                encoded = base64.urlsafe_b64encode(d.to_bytes((d.bit_length() + 7) // 8, "big"))
                self.secret(f"private key {key.kid} (JWK d)", encoded.rstrip(b"=").decode())

    # -- collecting what must not hold them ---------------------------------------------------

    def response(self, where: str, response: Any) -> Any:
        """A response that must carry no secret: its body and headers."""
        headers = "\n".join(f"{name}: {value}" for name, value in response.items())
        self.texts.append((where, f"{headers}\n\n{response.content.decode(errors='replace')}"))
        return response

    def text(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    # -- looking ------------------------------------------------------------------------------

    def _found(
        self, where: str, text: str, allowed: set[str] | frozenset[str] = frozenset()
    ) -> list[str]:
        found = []
        for needle, label in self.needles.items():
            if needle in allowed:
                continue
            start = text.find(needle)
            if start >= 0:
                context = text[max(0, start - 80) : start + len(needle) + 40].replace("\n", " ")
                found.append(f"{label} in {where}: ...{context}...")
        return found

    def findings(self) -> list[str]:
        self.server_secrets()
        found: list[str] = []
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        for record in self.records:
            allowed = self.in_sql if record.name == "django.db.backends" else frozenset()
            where = f"log {record.name} ({record.levelname})"
            found += self._found(where, formatter.format(record), allowed)
        for message in mail.outbox:
            parts = [message.subject, str(message.body)]
            parts += [str(content) for content, _type in getattr(message, "alternatives", [])]
            found += self._found(f"error mail {message.subject[:60]!r}", "\n".join(parts))
        for where, text in self.texts:
            found += self._found(where, text)
        audit = json.dumps(list(AuditEvent.objects.values()), default=str)
        found += self._found("the audit trail", audit)
        return found

    def assert_no_leak(self) -> None:
        if self.expect_logs:
            assert self.records, "nothing was logged: the capture is not working"
        found = self.findings()
        assert not found, f"{len(found)} leak(s):\n" + "\n".join(found)


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.getMessage()  # fail here, not later, on a bad format string
        self.records.append(record)


@pytest.fixture
def leaks(mailoutbox: list[Any]) -> Iterator[LeakCheck]:
    """Every logger at DEBUG into a recorder, SQL logged with its parameters, errors mailed
    to ADMINS by Django's ``AdminEmailHandler`` with the HTML report, ``DEBUG = False``."""
    recorder = _Recorder()
    mailer = AdminEmailHandler(include_html=True)
    mailer.setLevel(logging.ERROR)
    saved = {}
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate, logger.disabled)
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if name:
            logger.propagate = True
    root = logging.getLogger()
    root.addHandler(recorder)
    root.addHandler(mailer)
    forced = {alias: connections[alias].force_debug_cursor for alias in connections}
    for alias in connections:
        connections[alias].force_debug_cursor = True
    try:
        with override_settings(DEBUG=False, ADMINS=ADMINS):
            yield LeakCheck(recorder.records)
    finally:
        for alias, value in forced.items():
            connections[alias].force_debug_cursor = value
        root.removeHandler(recorder)
        root.removeHandler(mailer)
        for name, (level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def tokens_config(**overrides: Any) -> override_settings:
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


#: Reuse of a rotated refresh token is detected at once (no retry grace); the address
#: throttle does not get in the way of the flows (the username throttle stays).
STRICT = {"REFRESH_REUSE_GRACE": 0, "THROTTLE_FAILURES_PER_IP": 1000}


@pytest.fixture
def owner(django_user_model: Any, leaks: LeakCheck) -> Any:
    password = leaks.secret("alice's password", random_password("alice"))
    user = django_user_model.objects.create_user(username="alice", password=password, email=EMAIL)
    user.raw_password = password
    return user


def post_json(client: Client, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the client's side: API-key assertions, OAuth 2.0 clients ------------------------------


def assertion(key_id: str, secret: str, *, issued_at: float | None = None) -> str:
    iat = int(time.time() if issued_at is None else issued_at)
    claims = {"iat": iat, "exp": iat + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id})


def basic(client_id: str, secret: str) -> str:
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def create_application(leaks: LeakCheck, *args: str) -> tuple[Application, str | None]:
    """``manage.py createapplication ARGS``: the application and its secret (None: public)."""
    out = io.StringIO()
    call_command("createapplication", *args, stdout=out)
    name = next(arg.split("=", 1)[1] for arg in args if arg.startswith("--name="))
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("client_secret: ")]
    secret = lines[0].removeprefix("client_secret: ") if lines else None
    if secret:
        leaks.secret(f"client secret of {name}", secret)
    return Application.objects.get(name=name), secret


def new_pkce(leaks: LeakCheck) -> tuple[str, str]:
    verifier = leaks.secret("a PKCE verifier", secrets.token_urlsafe(48))
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization_code(
    leaks: LeakCheck, browser: Client, application: Application, challenge: str
) -> str:
    """A signed-in ``browser`` allows the consent form; the code the redirect carries."""
    query = {
        "response_type": "code",
        "client_id": application.client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid profile read",
        "state": "state-" + secrets.token_hex(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    url = f"/oauth2/authorize?{urlencode(query)}"
    page = leaks.response("the consent page", browser.get(url))
    assert page.status_code == 200, page.content
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    allowed = browser.post(url, {**fields, "allow": "on"})
    assert allowed.status_code == 302, allowed.content
    code = parse_qs(urlsplit(allowed["Location"]).query)["code"][0]
    # django-oauth-toolkit stores codes as they are (single-use, short-lived, and useless
    # without the PKCE verifier, which is nowhere): SQL logging may show them, nothing else.
    return leaks.secret("an authorization code", code, stored_in_clear=True)


def code_exchange(
    client: Client,
    application: Application,
    secret: str | None,
    code: str,
    verifier: str,
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    if secret is None:
        return client.post("/oauth2/token", {**data, "client_id": application.client_id})
    return client.post(
        "/oauth2/token", data, HTTP_AUTHORIZATION=basic(application.client_id, secret)
    )


def oauth2_refresh(
    client: Client, application: Application, secret: str | None, refresh_token: str
) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if secret is None:
        return client.post("/oauth2/token", {**data, "client_id": application.client_id})
    return client.post(
        "/oauth2/token", data, HTTP_AUTHORIZATION=basic(application.client_id, secret)
    )


def sign_in(leaks: LeakCheck, browser: Client, owner: Any) -> None:
    """The OAuth 2.0 login page, first with a wrong password, then with the right one."""
    wrong = leaks.secret("a wrong password", random_password("wrong"))
    refused = browser.post("/oauth2/login", {"username": "alice", "password": wrong})
    leaks.response("the login page after a wrong password", refused)
    assert refused.status_code == 200
    signed_in = browser.post("/oauth2/login", {"username": "alice", "password": owner.raw_password})
    assert signed_in.status_code == 302, signed_in.content


# -- password tokens -----------------------------------------------------------------------


def test_password_flows_leak_nothing(leaks: LeakCheck, owner: Any) -> None:
    """``/api/token``, its refresh and logout, right and wrong, leave no password or token in
    a log, an error body or the audit trail."""
    client = Client()
    right = {"username": "alice", "password": owner.raw_password}
    with tokens_config(**STRICT):
        first = leaks.tokens("password login", post_json(client, "/api/token", right).json())
        by_headers = post_json(client, "/api/token", {}, **right)
        assert by_headers.status_code == 200
        leaks.tokens("password login (headers)", by_headers.json())

        wrong = leaks.secret("a wrong password", random_password("wrong"))
        other = leaks.secret("an unknown user's password", random_password("nobody"))
        for where, body in [
            ("wrong password", {"username": "alice", "password": wrong}),
            ("unknown user", {"username": "nobody", "password": other}),
        ]:
            refused = leaks.response(where, post_json(client, "/api/token", body))
            assert refused.status_code == 401
        truncated = f'{{"username": "alice", "password": "{owner.raw_password}"'
        malformed = client.post("/api/token", truncated, content_type="application/json")
        assert leaks.response("malformed JSON", malformed).status_code == 400

        second = post_json(client, "/api/token/refresh", {"refresh_token": first["refresh_token"]})
        leaks.tokens("password refresh", second.json())
        reused = post_json(client, "/api/token/refresh", {"refresh_token": first["refresh_token"]})
        assert leaks.response("reused refresh token", reused).status_code == 401
        revoked = post_json(
            client, "/api/token/refresh", {"refresh_token": second.json()["refresh_token"]}
        )
        assert leaks.response("refresh of a revoked session", revoked).status_code == 401
        me = leaks.response("/api/me", client.get("/api/me", headers=bearer(first["access_token"])))
        assert me.status_code == 401

        live = by_headers.json()
        assert client.get("/api/me", headers=bearer(live["access_token"])).status_code == 200
        out = client.post("/api/token/logout", headers=bearer(live["access_token"]))
        assert leaks.response("logout", out).status_code == 204
        again = client.post("/api/token/logout", headers=bearer(live["access_token"]))
        assert leaks.response("second logout", again).status_code == 401

    # Guesses until the username throttle answers 429 (twice its limit, should a throttle
    # window turn meanwhile).
    for attempt in range(12):
        guess = leaks.secret("a guessed password", random_password(f"guess{attempt}"))
        answer = post_json(client, "/api/token", {"username": "alice", "password": guess})
        leaks.response("a throttled guess", answer)
        if answer.status_code == 429:
            break
    assert answer.status_code == 429
    leaks.assert_no_leak()


# -- API-key tokens ------------------------------------------------------------------------


def test_api_key_flows_leak_nothing(leaks: LeakCheck, owner: Any) -> None:
    """Issuing a key (``create_api_key --json``), assertions good, replayed, forged and
    expired, ``/auth/login``, ``/auth/refresh``, ``/auth/logout`` and rotating the secret leave
    no secret, assertion or token behind."""
    client = Client()
    out = io.StringIO()
    call_command("create_api_key", "--user", "alice", "--name", "ci", "--json", stdout=out)
    issued = json.loads(out.getvalue())
    key_id, first_secret = issued["key_id"], leaks.secret("API-key secret", issued["secret"])

    with tokens_config(**STRICT):
        good = leaks.token("an assertion", assertion(key_id, first_secret))
        granted = client.post("/auth/api-key", headers=bearer(good))
        assert granted.status_code == 200, granted.content
        tokens = leaks.tokens("API-key exchange", granted.json())
        replayed = leaks.response(
            "replayed assertion", client.post("/auth/api-key", headers=bearer(good))
        )
        assert replayed.status_code == 401
        forger = leaks.secret("a forger's secret", secrets.token_urlsafe(48))
        forged = leaks.token("a forged assertion", assertion(key_id, forger))
        refused = client.post("/auth/api-key", headers=bearer(forged))
        assert leaks.response("forged assertion", refused).status_code == 401
        old = leaks.token(
            "an expired assertion", assertion(key_id, first_secret, issued_at=time.time() - 600)
        )
        refused = client.post("/auth/api-key", headers=bearer(old))
        assert leaks.response("expired assertion", refused).status_code == 401
        stranger = leaks.token("an unknown key's assertion", assertion("dtk_unknown", first_secret))
        refused = client.post("/auth/api-key", headers=bearer(stranger))
        assert leaks.response("unknown key", refused).status_code == 401

        refreshed = post_json(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        leaks.tokens("API-key refresh", refreshed.json())
        reused = post_json(client, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert leaks.response("reused refresh JWT", reused).status_code == 401

        login = post_json(client, "/auth/login", {"email": EMAIL, "password": owner.raw_password})
        assert login.status_code == 200
        session = leaks.tokens("email login", login.json())
        wrong = leaks.secret("a wrong password", random_password("wrong"))
        stranger_pw = leaks.secret("an unknown email's password", random_password("nobody"))
        for where, body in [
            ("login, wrong password", {"email": EMAIL, "password": wrong}),
            ("login, unknown email", {"email": "nobody@example.com", "password": stranger_pw}),
        ]:
            assert leaks.response(where, post_json(client, "/auth/login", body)).status_code == 401
        logout = client.post("/auth/logout", headers=bearer(session["access_token"]))
        assert leaks.response("API-key logout", logout).status_code == 204
        after = post_json(client, "/auth/refresh", {"refresh_token": session["refresh_token"]})
        assert leaks.response("refresh after logout", after).status_code == 401

        out = io.StringIO()
        call_command("rotate_api_key_secret", key_id, "--json", stdout=out)
        new_secret = leaks.secret("rotated API-key secret", json.loads(out.getvalue())["secret"])
        stale = leaks.token("an assertion with the old secret", assertion(key_id, first_secret))
        refused = client.post("/auth/api-key", headers=bearer(stale))
        assert leaks.response("old secret after rotation", refused).status_code == 401
        fresh = leaks.token("an assertion with the new secret", assertion(key_id, new_secret))
        assert client.post("/auth/api-key", headers=bearer(fresh)).status_code == 200

        out = io.StringIO()
        call_command("revoke_api_key", key_id, "--json", stdout=out)
        leaks.text("revoke_api_key's output", out.getvalue())
        last = leaks.token("an assertion of a revoked key", assertion(key_id, new_secret))
        refused = client.post("/auth/api-key", headers=bearer(last))
        assert leaks.response("revoked key", refused).status_code == 401
    leaks.assert_no_leak()


# -- OAuth 2.0 -----------------------------------------------------------------------------


def test_oauth2_flows_leak_nothing(leaks: LeakCheck, owner: Any) -> None:
    """client_credentials (Basic and form, right and wrong secret), the authorization code
    with PKCE (confidential and public clients), refresh and its reuse, revoke, introspect
    and userinfo leave no secret, code, verifier or token behind."""
    client = Client()
    service, service_secret = create_application(
        leaks, "confidential", "client-credentials", "--name=reporting"
    )
    assert service_secret is not None
    wrong = leaks.secret("a wrong client secret", secrets.token_urlsafe(48))
    grant = {"grant_type": "client_credentials", "scope": "read"}
    for how, secret, status in [("right", service_secret, 200), ("wrong", wrong, 401)]:
        by_basic = client.post(
            "/oauth2/token", grant, HTTP_AUTHORIZATION=basic(service.client_id, secret)
        )
        by_form = client.post(
            "/oauth2/token", {**grant, "client_id": service.client_id, "client_secret": secret}
        )
        for answer in (by_basic, by_form):
            assert answer.status_code == status, answer.content
            if status == 200:
                leaks.tokens("client_credentials", answer.json())
            else:
                leaks.response(f"client_credentials, {how} secret", answer)

    with tokens_config(**STRICT):
        web, web_secret = create_application(
            leaks,
            "confidential",
            "authorization-code",
            "--name=web",
            f"--redirect-uris={CALLBACK}",
        )
        spa, _none = create_application(
            leaks, "public", "authorization-code", "--name=spa", f"--redirect-uris={CALLBACK}"
        )
        browser = Client()
        start = browser.get(f"/oauth2/authorize?client_id={web.client_id}&response_type=code")
        leaks.response("authorize, signed out", start)
        sign_in(leaks, browser, owner)

        verifier, challenge = new_pkce(leaks)
        code = authorization_code(leaks, browser, web, challenge)
        other_verifier, _ = new_pkce(leaks)
        mismatched = code_exchange(client, web, web_secret, code, other_verifier)
        assert leaks.response("wrong PKCE verifier", mismatched).status_code == 400
        code = authorization_code(leaks, browser, web, challenge)
        exchanged = code_exchange(client, web, web_secret, code, verifier)
        assert exchanged.status_code == 200, exchanged.content
        tokens = leaks.tokens("authorization code", exchanged.json())
        replayed = code_exchange(client, web, web_secret, code, verifier)
        assert leaks.response("replayed code", replayed).status_code == 400

        renewed = oauth2_refresh(client, web, web_secret, tokens["refresh_token"])
        assert renewed.status_code == 200, renewed.content
        renewed_tokens = leaks.tokens("OAuth 2.0 refresh", renewed.json())
        reused = oauth2_refresh(client, web, web_secret, tokens["refresh_token"])
        assert leaks.response("reused OAuth 2.0 refresh token", reused).status_code == 400
        revoked_family = oauth2_refresh(client, web, web_secret, renewed_tokens["refresh_token"])
        assert leaks.response("refresh of a revoked family", revoked_family).status_code == 400

        spa_verifier, spa_challenge = new_pkce(leaks)
        spa_code = authorization_code(leaks, browser, spa, spa_challenge)
        spa_tokens = code_exchange(client, spa, None, spa_code, spa_verifier)
        assert spa_tokens.status_code == 200, spa_tokens.content
        public = leaks.tokens("public client", spa_tokens.json())

        verifier, challenge = new_pkce(leaks)
        code = authorization_code(leaks, browser, web, challenge)
        live = leaks.tokens(
            "authorization code", code_exchange(client, web, web_secret, code, verifier).json()
        )
        auth = {"HTTP_AUTHORIZATION": basic(web.client_id, web_secret)}
        for token in (live["access_token"], live["refresh_token"], public["access_token"]):
            looked_up = client.post("/oauth2/introspect", {"token": token}, **auth)
            assert leaks.response("introspection", looked_up).status_code == 200
            assert looked_up.json()["active"] is True
        refused = client.post(
            "/oauth2/introspect",
            {"token": live["access_token"]},
            HTTP_AUTHORIZATION=basic(web.client_id, wrong),
        )
        assert leaks.response("introspection, wrong secret", refused).status_code == 401
        info = client.get("/oauth2/userinfo", headers=bearer(live["access_token"]))
        assert leaks.response("userinfo", info).status_code == 200
        me = client.get("/api/me", headers=bearer(live["access_token"]))
        assert leaks.response("/api/me with an OAuth 2.0 token", me).status_code == 200
        done = client.post("/oauth2/revoke", {"token": live["refresh_token"]}, **auth)
        assert leaks.response("revocation", done).status_code == 200
        info = client.get("/oauth2/userinfo", headers=bearer(live["access_token"]))
        assert leaks.response("userinfo, revoked token", info).status_code == 401
        gone = client.post("/oauth2/introspect", {"token": live["access_token"]}, **auth)
        assert leaks.response("introspection, revoked", gone).json() == {"active": False}
    leaks.assert_no_leak()
    # oauthlib's and django-oauth-toolkit's debug lines are kept, their credentials blanked.
    messages = [record.getMessage() for record in leaks.records]
    for line in (
        "Validating refresh token <redacted> for client",
        "'code': '<redacted>'",
        "callback?code=<redacted>&state=",
    ):
        assert any(line in message for message in messages), line


def test_the_search_finds_what_leaks(leaks: LeakCheck, owner: Any) -> None:
    """The search itself: a secret in a log line (whole, or its signature or one end), in SQL,
    in an error mail, a response or the audit trail is reported; a code stored in the clear
    is allowed in SQL only."""
    token = leaks.token(
        "a token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW9mLWEtdG9rZW4tMTIz"
    )
    opaque = leaks.secret("an opaque secret", secrets.token_urlsafe(32))
    code = leaks.secret("a code", secrets.token_urlsafe(32), stored_in_clear=True)
    logging.getLogger("django_tokens.views").debug("refreshing with %s", opaque[:20])
    logging.getLogger("oauthlib.oauth2").debug("got %s", token.rsplit(".", 1)[1])
    logging.getLogger("django.db.backends").debug("SELECT %s", code)
    logging.getLogger("oauth2_provider").debug("code %s", code[-20:])
    mail.mail_admins("report", f"POST: {token}")
    leaks.text("a response", f"<p>{opaque}</p>")
    AuditEvent.objects.create(action=AuditEvent.Action.TOKEN_ISSUED, detail={"x": opaque})

    found = {line.split(": ...", 1)[0] for line in leaks.findings()}

    assert {
        "an opaque secret (prefix) in log django_tokens.views (DEBUG)",
        "a token (signature) in log oauthlib.oauth2 (DEBUG)",
        "a code (suffix) in log oauth2_provider (DEBUG)",
        "a token in error mail '[Django] report'",
        "an opaque secret in a response",
        "an opaque secret in the audit trail",
    } <= found, found
    assert not any(line.startswith("a code") and "django.db.backends" in line for line in found)


# -- keys, secrets and the commands that change them ---------------------------------------


def test_key_maintenance_leaks_nothing(leaks: LeakCheck, owner: Any) -> None:
    """``rotate_signing_key``, ``retire_signing_key``, ``reencrypt_secrets`` (under a new
    encryption key) and ``purge_tokens`` print and log no private key, encryption key or
    API-key secret."""
    client = Client()
    right = {"username": "alice", "password": owner.raw_password}
    leaks.tokens("password login", post_json(client, "/api/token", right).json())
    out = io.StringIO()
    call_command("create_api_key", "--user", "alice", "--name", "ci", "--json", stdout=out)
    leaks.secret("API-key secret", json.loads(out.getvalue())["secret"])

    for command in (["rotate_signing_key"], ["rotate_signing_key", "--json"]):
        out = io.StringIO()
        call_command(*command, stdout=out)
        leaks.text(" ".join(command), out.getvalue())
    retiring = SigningKey.objects.filter(state=SigningKey.State.RETIRING).first()
    assert retiring is not None
    out = io.StringIO()
    call_command("retire_signing_key", retiring.kid, "--force", stdout=out)
    leaks.text("retire_signing_key", out.getvalue())
    leaks.server_secrets()  # the keys as encrypted under the old encryption key

    old = settings.DJANGO_TOKENS["ENCRYPTION_KEYS"]
    with tokens_config(ENCRYPTION_KEYS=[FERNET_KEY_NEW, *old]):
        outputs = []
        for options in ({"verbosity": 2}, {"json": True}):
            out = io.StringIO()
            call_command("reencrypt_secrets", stdout=out, **options)
            leaks.text(f"reencrypt_secrets {options}", out.getvalue())
            outputs.append(out.getvalue())
        assert "re-encrypted django_tokens.ApiKey.encrypted_secret:" in outputs[0], outputs
        assert json.loads(outputs[1])["reencrypted"] == 0, outputs  # all done the first time
        leaks.secret("the new encryption key", FERNET_KEY_NEW)
        leaks.server_secrets()
        out = io.StringIO()
        call_command("purge_tokens", stdout=out)
        leaks.text("purge_tokens", out.getvalue())
        leaks.tokens("password login", post_json(client, "/api/token", right).json())
        leaks.assert_no_leak()


# -- server errors -------------------------------------------------------------------------


def test_server_errors_leak_nothing(leaks: LeakCheck, owner: Any) -> None:
    """When a deployment's claims hook fails, every token endpoint answers 500 without a
    traceback, and neither its log lines nor the error reports Django mails to ADMINS
    (with each frame's local variables) carry the request's password, assertion, refresh
    token, client secret, code or verifier."""
    client = Client()
    right = {"username": "alice", "password": owner.raw_password}
    before = leaks.tokens("password login", post_json(client, "/api/token", right).json())
    keycloak = leaks.tokens(
        "email login",
        post_json(client, "/auth/login", {"email": EMAIL, "password": owner.raw_password}).json(),
    )
    out = io.StringIO()
    call_command("create_api_key", "--user", "alice", "--name", "ci", "--json", stdout=out)
    issued = json.loads(out.getvalue())
    key_secret = leaks.secret("API-key secret", issued["secret"])
    web, web_secret = create_application(
        leaks, "confidential", "authorization-code", "--name=web", f"--redirect-uris={CALLBACK}"
    )
    browser = Client()
    browser.force_login(owner)
    verifier, challenge = new_pkce(leaks)
    code = authorization_code(leaks, browser, web, challenge)
    first = leaks.tokens(
        "authorization code", code_exchange(client, web, web_secret, code, verifier).json()
    )
    verifier, challenge = new_pkce(leaks)
    pending_code = authorization_code(leaks, browser, web, challenge)

    hook = f"{__name__}.failing_claims"
    with tokens_config(CLAIMS_HOOK=hook):
        failures = {
            "password login": post_json(client, "/api/token", right),
            "password login (headers)": post_json(client, "/api/token", {}, **right),
            "password refresh": post_json(
                client, "/api/token/refresh", {"refresh_token": before["refresh_token"]}
            ),
            "email login": post_json(
                client, "/auth/login", {"email": EMAIL, "password": owner.raw_password}
            ),
            "API-key exchange": client.post(
                "/auth/api-key",
                headers=bearer(
                    leaks.token("an assertion", assertion(issued["key_id"], key_secret))
                ),
            ),
            "API-key refresh": post_json(
                client, "/auth/refresh", {"refresh_token": keycloak["refresh_token"]}
            ),
            "OAuth 2.0 code exchange": code_exchange(
                client, web, web_secret, pending_code, verifier
            ),
            "OAuth 2.0 refresh": oauth2_refresh(client, web, web_secret, first["refresh_token"]),
            "OAuth 2.0 refresh (form)": client.post(
                "/oauth2/token",
                {
                    "grant_type": "refresh_token",
                    "refresh_token": first["refresh_token"],
                    "client_id": web.client_id,
                    "client_secret": web_secret,
                },
            ),
        }
    for where, response in failures.items():
        leaks.response(f"500 of {where}", response)
        assert response.status_code == 500, (where, response.content)
        assert b"Traceback" not in response.content
    assert len(mail.outbox) >= len(failures), "the error reports were not sent"
    leaks.assert_no_leak()


# -- the admin -----------------------------------------------------------------------------


def _admin_pages(superuser: Client, leaks: LeakCheck) -> int:
    """Every changelist, and up to three change and history pages, of every registered model;
    returns how many pages were read."""
    read = 0
    for model, model_admin in admin_site_module.site._registry.items():
        opts = model._meta
        listing = superuser.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert listing.status_code == 200, (opts.label, listing.status_code)
        leaks.response(f"the admin changelist of {opts.label}", listing)
        read += 1
        for obj in model_admin.get_queryset(listing.wsgi_request)[:3]:
            for view in ("change", "history"):
                url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])
                page = superuser.get(url)
                assert page.status_code == 200, (opts.label, obj.pk, view, page.status_code)
                leaks.response(f"the admin {view} page of {opts.label} {obj.pk}", page)
                read += 1
    return read


def test_admin_pages_show_no_secret(leaks: LeakCheck, owner: Any, admin_user: Any) -> None:
    """After API keys and client secrets issued and rotated in the admin (each shown once, on
    the page that answers) and tokens of every service, no admin page shows a secret, a
    token, a code or a private key."""
    superuser = Client()
    superuser.force_login(admin_user)
    issued = superuser.post(
        reverse("admin:django_tokens_apikey_add"),
        {"owner": "alice", "name": "ci", "scopes": "openid email", "expires_in_days": ""},
    )
    assert issued.status_code == 200
    (first,) = re.findall(r'class="vTextField secret"[^>]*value="([^"]+)"', issued.text)
    leaks.secret("API-key secret (admin)", first)
    key = ApiKey.objects.get(name="ci")
    rotated = superuser.post(
        reverse("admin:django_tokens_apikey_rotate", args=[key.pk]),
        {"post": "yes", "grace_seconds": "3600"},
    )
    (second,) = re.findall(r'class="vTextField secret"[^>]*value="([^"]+)"', rotated.text)
    leaks.secret("rotated API-key secret (admin)", second)

    added = superuser.post(
        reverse("admin:oauth2_provider_application_add"),
        {
            "name": "web",
            "client_id": "web-client",
            "client_type": "confidential",
            "authorization_grant_type": "authorization-code",
            "redirect_uris": CALLBACK,
            "post_logout_redirect_uris": "",
            "allowed_origins": "",
            "algorithm": "",
            "hash_client_secret": "on",
        },
    )
    assert added.status_code == 200, added.content
    (client_secret,) = re.findall(r'class="vTextField secret"[^>]*value="([^"]+)"', added.text)
    leaks.secret("client secret (admin)", client_secret)
    web = Application.objects.get(client_id="web-client")
    replaced = superuser.post(
        reverse("admin:oauth2_provider_application_new-secret", args=[web.pk]), {"post": "yes"}
    )
    (web_secret,) = re.findall(r'class="vTextField secret"[^>]*value="([^"]+)"', replaced.text)
    leaks.secret("replaced client secret (admin)", web_secret)

    client = Client()
    right = {"username": "alice", "password": owner.raw_password}
    leaks.tokens("password login", post_json(client, "/api/token", right).json())
    exchange = client.post(
        "/auth/api-key", headers=bearer(leaks.token("an assertion", assertion(key.key_id, second)))
    )
    leaks.tokens("API-key exchange", exchange.json())
    browser = Client()
    browser.force_login(owner)
    verifier, challenge = new_pkce(leaks)
    code = authorization_code(leaks, browser, web, challenge)
    leaks.tokens(
        "authorization code", code_exchange(client, web, web_secret, code, verifier).json()
    )
    new_pkce(leaks)
    authorization_code(leaks, browser, web, challenge)  # a code not yet exchanged
    assert not get_user_model().objects.filter(username="").exists()

    assert _admin_pages(superuser, leaks) > 20
    leaks.assert_no_leak()


# -- a real server, its logs at DEBUG ------------------------------------------------------


@dataclass
class LoggedServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _start_debug_server(log: Path) -> LoggedServer:
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "DEBUG": "0",
        "LOG_LEVEL": "DEBUG",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "example_project.wsgi:application",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "1",
                "--log-level",
                "debug",
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "5",
                "--no-control-socket",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = LoggedServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            requests.get(f"{server.url}/.well-known/jwks.json", timeout=5)
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
            continue
        return server
    raise AssertionError(f"the server did not answer:\n{log.read_text(errors='replace')}")


def _stop_server(server: LoggedServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.redis
def test_server_logs_at_debug_hold_no_secret(
    transactional_db: None, tmp_path: Path, django_user_model: Any
) -> None:
    """Under gunicorn with the example's logging at DEBUG (``LOG_LEVEL``) and gunicorn's
    debug and access logs, the password, API-key and OAuth 2.0 flows and their failures
    write no secret into the server's output."""
    leaks = LeakCheck([], expect_logs=False)
    password = leaks.secret("alice's password", random_password("alice"))
    django_user_model.objects.create_user(username="alice", password=password, email=EMAIL)
    out = io.StringIO()
    call_command("create_api_key", "--user", "alice", "--name", "ci", "--json", stdout=out)
    issued = json.loads(out.getvalue())
    key_secret = leaks.secret("API-key secret", issued["secret"])
    service, service_secret = create_application(
        leaks, "confidential", "client-credentials", "--name=reporting"
    )
    assert service_secret is not None

    server = _start_debug_server(tmp_path / "server.log")
    try:
        with requests.Session() as http:
            http.headers["Connection"] = "close"

            def post(path: str, **kwargs: Any) -> requests.Response:
                return http.post(f"{server.url}{path}", timeout=10, **kwargs)

            body = post("/api/token", json={"username": "alice", "password": password}).json()
            leaks.tokens("password login", body)
            wrong = leaks.secret("a wrong password", random_password("wrong"))
            assert (
                post("/api/token", json={"username": "alice", "password": wrong}).status_code == 401
            )
            other = leaks.secret("an unknown user's password", random_password("nobody"))
            assert (
                post("/api/token", json={"username": "nobody", "password": other}).status_code
                == 401
            )
            renewed = post("/api/token/refresh", json={"refresh_token": body["refresh_token"]})
            leaks.tokens("password refresh", renewed.json())
            assert (
                post(
                    "/api/token/logout", headers=bearer(renewed.json()["access_token"])
                ).status_code
                == 204
            )

            signed = leaks.token("an assertion", assertion(issued["key_id"], key_secret))
            exchanged = post("/auth/api-key", headers=bearer(signed))
            assert exchanged.status_code == 200, exchanged.text
            keycloak = leaks.tokens("API-key exchange", exchanged.json())
            assert post("/auth/api-key", headers=bearer(signed)).status_code == 401
            refreshed = post("/auth/refresh", json={"refresh_token": keycloak["refresh_token"]})
            leaks.tokens("API-key refresh", refreshed.json())
            login = post("/auth/login", json={"email": EMAIL, "password": password})
            leaks.tokens("email login", login.json())
            assert post("/auth/login", json={"email": EMAIL, "password": wrong}).status_code == 401

            grant = {"grant_type": "client_credentials", "scope": "read"}
            granted = post(
                "/oauth2/token",
                data=grant,
                headers={"Authorization": basic(service.client_id, service_secret)},
            )
            assert granted.status_code == 200, granted.text
            leaks.tokens("client_credentials", granted.json())
            bad = leaks.secret("a wrong client secret", secrets.token_urlsafe(48))
            refused = post(
                "/oauth2/token",
                data={**grant, "client_id": service.client_id, "client_secret": bad},
            )
            assert refused.status_code == 401
            looked_up = post(
                "/oauth2/introspect",
                data={"token": granted.json()["access_token"]},
                headers={"Authorization": basic(service.client_id, service_secret)},
            )
            assert looked_up.json()["active"] is True, looked_up.text
    finally:
        _stop_server(server)
    output = server.log.read_text(errors="replace")
    # gunicorn's debug and access lines, and oauthlib's debug lines through the example's
    # logging: the run did log at DEBUG.
    for line in ("[DEBUG]", '"POST /api/token HTTP/1.1" 200', "Issuing token to client id"):
        assert line in output, (line, output[-3000:])
    leaks.text("the server's output", output)
    leaks.assert_no_leak()
