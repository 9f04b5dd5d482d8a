"""API-key assertions and revocation across two gunicorn processes on one PostgreSQL database and
one Redis: an assertion is accepted once whichever process sees it, also when both see it at the
same moment, and a key revoked anywhere stops its sessions' access tokens everywhere at once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from django_tokens import api_keys
from django_tokens.api_keys import IssuedSecret
from django_tokens.models import Session
from tests.test_multiprocess import CLOSE, Server, two_servers

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CREDENTIALS_REFUSED = {"error": "invalid_credentials", "message": "Missing or invalid credentials"}
REFRESH_REFUSED = {
    "error": "invalid_grant",
    "message": "Wrong or expired refresh token, or user/api-key removed",
}
CONCURRENT_SENDS = 10


@pytest.fixture
def servers(transactional_db: None, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    yield from two_servers(tmp_path)


@pytest.fixture
def api_key(user: Any) -> IssuedSecret:
    return api_keys.issue(user, name="ci")


def sign_assertion(issued: IssuedSecret) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(
        claims, issued.secret, algorithm="HS256", headers={"kid": issued.api_key.key_id}
    )


def exchange(server: Server, assertion: str) -> requests.Response:
    headers = {**CLOSE, "Authorization": f"Bearer {assertion}"}
    return requests.post(f"{server.url}/auth/api-key", headers=headers, timeout=10)


def accepted(server: Server, assertion: str) -> dict[str, Any]:
    response = exchange(server, assertion)
    assert response.status_code == 200, f"{server.name}: {response.text}"
    return response.json()


def test_assertion_accepted_by_one_process_is_refused_as_a_replay_by_the_other(
    servers: tuple[Server, Server], api_key: IssuedSecret
) -> None:
    a, b = servers
    first, second = sign_assertion(api_key), sign_assertion(api_key)

    accepted(a, first)
    replayed_on_b = exchange(b, first)
    accepted(b, second)
    replayed_on_a = exchange(a, second)

    for response in (replayed_on_b, replayed_on_a):
        assert response.status_code == 401, response.text
        assert response.json() == CREDENTIALS_REFUSED
    assert Session.objects.filter(api_key=api_key.api_key).count() == 2


def test_one_of_ten_concurrent_sends_of_an_assertion_is_accepted(
    servers: tuple[Server, Server], api_key: IssuedSecret
) -> None:
    for server in servers:  # loaded and connected, so that the sends below really overlap
        accepted(server, sign_assertion(api_key))
    assertion = sign_assertion(api_key)
    start = threading.Barrier(CONCURRENT_SENDS)

    def send(attempt: int) -> requests.Response:
        start.wait(timeout=10)
        return exchange(servers[attempt % 2], assertion)

    with ThreadPoolExecutor(max_workers=CONCURRENT_SENDS) as pool:
        responses = list(pool.map(send, range(CONCURRENT_SENDS)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) == 1, statuses
    # Failures for one key id are throttled: past the limit, refusals become 429.
    for response in responses:
        if response.status_code != 200:
            assert response.status_code in (401, 429), response.text
            assert response.json()["error"] in ("invalid_credentials", "too_many_attempts")
    session_state = next(r.json() for r in responses if r.status_code == 200)["session_state"]
    assert Session.objects.filter(api_key=api_key.api_key).count() == 3
    assert Session.objects.filter(pk=session_state).exists()


def test_revoking_a_key_stops_its_sessions_on_every_process_at_once(
    servers: tuple[Server, Server], user: Any, api_key: IssuedSecret
) -> None:
    a, b = servers
    other_key = api_keys.issue(user, name="other")
    revoked = accepted(a, sign_assertion(api_key))
    kept = accepted(b, sign_assertion(other_key))
    seen_by_b = b.me(revoked["access_token"])
    assert seen_by_b.status_code == 200, seen_by_b.text
    assert seen_by_b.json()["session"] == revoked["session_state"]

    assert api_keys.revoke(api_key.api_key.key_id) == 1

    assert b.me(revoked["access_token"]).status_code == 401
    assert a.me(revoked["access_token"]).status_code == 401
    refused = b.post("/auth/refresh", {"refresh_token": revoked["refresh_token"]})
    assert refused.status_code == 401
    assert refused.json() == REFRESH_REFUSED
    assert a.me(kept["access_token"]).status_code == 200
    assert b.me(kept["access_token"]).status_code == 200
