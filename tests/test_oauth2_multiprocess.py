"""OAuth 2.0 across two gunicorn processes on one PostgreSQL database and one Redis: a code
obtained from one process is exchanged at the other, and revocation, rotation and reuse seen
by either are honoured by both — JWTAuthentication included, through the revocation marks."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from oauth2_provider.models import Application
from oauth2_provider.models import RefreshToken as DOTRefreshToken

from tests.test_multiprocess import CLOSE, Server, two_servers
from tests.test_seed_demo import form_fields

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CLIENT_ID = "two-process-spa"
CONCURRENT_RETRIES = 6


@pytest.fixture
def servers(transactional_db: None, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    yield from two_servers(tmp_path)


@pytest.fixture
def spa(user: Any, servers: tuple[Server, Server]) -> Application:
    a, b = servers
    return Application.objects.create(
        name="Two-process SPA",
        client_id=CLIENT_ID,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{a.url}/demo/callback {b.url}/demo/callback",
        client_secret="",
    )


def authorize(server: Server) -> tuple[str, str, str]:
    """Sign in as alice and allow, on ``server``: (code, redirect_uri, code_verifier)."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    redirect_uri = f"{server.url}/demo/callback"
    browser = requests.Session()
    login = browser.get(
        f"{server.url}/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": "openid profile read",
            "state": "two",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        timeout=10,
    )
    fields = {**form_fields(login.text), "username": "alice", "password": "alice-password"}
    consent = browser.post(login.url, data=fields, timeout=10)
    decision = {**form_fields(consent.text), "allow": "on"}
    answer = browser.post(consent.url, data=decision, timeout=10, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    query = requests.utils.urlparse(answer.headers["Location"]).query
    code = dict(part.split("=", 1) for part in query.split("&"))["code"]
    return code, redirect_uri, verifier


def token(server: Server, **form: str) -> requests.Response:
    return requests.post(
        f"{server.url}/oauth2/token",
        data={"client_id": CLIENT_ID, **form},
        headers=CLOSE,
        timeout=10,
    )


def exchange(server: Server, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
    response = token(
        server,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    assert response.status_code == 200, f"{server.name}: {response.text}"
    return response.json()


def refresh(server: Server, refresh_token: str) -> requests.Response:
    return token(server, grant_type="refresh_token", refresh_token=refresh_token)


def refreshed(server: Server, refresh_token: str) -> dict[str, Any]:
    response = refresh(server, refresh_token)
    assert response.status_code == 200, f"{server.name}: {response.text}"
    return response.json()


def revoke(server: Server, value: str) -> None:
    response = requests.post(
        f"{server.url}/oauth2/revoke",
        data={"client_id": CLIENT_ID, "token": value},
        headers=CLOSE,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_code_from_one_process_is_exchanged_once_at_the_other(
    servers: tuple[Server, Server], spa: Application
) -> None:
    a, b = servers
    code, redirect_uri, verifier = authorize(a)
    tokens = exchange(b, code, redirect_uri, verifier)
    assert a.me(tokens["access_token"]).status_code == 200
    again = token(
        a,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_rotation_and_revocation_in_one_process_stop_tokens_in_the_other(
    servers: tuple[Server, Server], spa: Application
) -> None:
    a, b = servers
    first = exchange(a, *authorize(a))
    second = refreshed(a, first["refresh_token"])
    # A rotated-away access token is gone from the database: B refuses it at once.
    assert b.me(first["access_token"]).status_code == 401
    assert b.me(second["access_token"]).status_code == 200

    revoke(b, second["refresh_token"])

    assert a.me(second["access_token"]).status_code == 401
    assert refresh(a, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_reuse_of_an_old_generation_revokes_the_family_for_both(
    servers: tuple[Server, Server], spa: Application
) -> None:
    a, b = servers
    first = exchange(a, *authorize(a))
    second = refreshed(a, first["refresh_token"])
    third = refreshed(b, second["refresh_token"])

    # Two generations back: never a retry, whatever the grace window.
    replay = refresh(b, first["refresh_token"])

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(a, third["refresh_token"]).status_code == 400
    assert a.me(third["access_token"]).status_code == 401
    assert b.me(third["access_token"]).status_code == 401


def test_concurrent_retries_across_processes_leave_one_live_member(
    servers: tuple[Server, Server], spa: Application
) -> None:
    a, b = servers
    first = exchange(a, *authorize(a))
    targets = [a, b] * (CONCURRENT_RETRIES // 2)

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        answers = list(pool.map(lambda s: refresh(s, first["refresh_token"]), targets))

    assert [answer.status_code for answer in answers] == [200] * len(targets), [
        answer.text for answer in answers
    ]
    family = DOTRefreshToken.objects.get(
        token_checksum=hashlib.sha256(first["refresh_token"].encode()).hexdigest()
    ).token_family
    live = DOTRefreshToken.objects.filter(token_family=family, revoked__isnull=True)
    assert live.count() == 1
    (winner,) = [
        answer.json()
        for answer in answers
        if hashlib.sha256(answer.json()["refresh_token"].encode()).hexdigest()
        == live.get().token_checksum
    ]
    assert refresh(b, winner["refresh_token"]).status_code == 200
