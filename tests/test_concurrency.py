"""Concurrent refreshes of one refresh token, over real HTTP against PostgreSQL's row locks.

A request reads its clock before it waits for the session's lock, so the loser of a race can
carry an earlier time than the rotation that beat it: the last tests pin what that means.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from django_tokens import sessions
from django_tokens.crypto import digest
from django_tokens.models import RefreshToken, Session

CONCURRENT_REQUESTS = 20
# The live server's request threads close their database connections when the HTTP connection
# closes; without keep-alive that is right after each response.
CLOSE = {"Connection": "close"}


@pytest.fixture
def grace(request: pytest.FixtureRequest) -> Iterator[int]:
    with override_settings(
        DJANGO_TOKENS={**settings.DJANGO_TOKENS, "REFRESH_REUSE_GRACE": request.param}
    ):
        yield request.param


def _request_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "process_request_thread" in thread.name]


@pytest.fixture
def refresh_url(live_server: Any) -> Iterator[str]:
    """The refresh endpoint; afterwards every request thread has ended and closed its
    database connection, so the database can be flushed."""
    yield f"{live_server.url}/api/token/refresh"
    for thread in _request_threads():
        thread.join(timeout=10)
    assert not _request_threads()


def obtain(base_url: str, credentials: dict[str, str]) -> dict[str, Any]:
    response = requests.post(f"{base_url}/api/token", json=credentials, headers=CLOSE, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def refresh_all_at_once(url: str, refresh_token: str) -> list[requests.Response]:
    """POST the same refresh token from many threads, released together by a barrier."""
    barrier = threading.Barrier(CONCURRENT_REQUESTS)

    def post(_: int) -> requests.Response:
        with requests.Session() as http:
            barrier.wait(timeout=10)
            return http.post(url, json={"refresh_token": refresh_token}, headers=CLOSE, timeout=30)

    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        return list(pool.map(post, range(CONCURRENT_REQUESTS)))


def live_members(session: Session) -> list[RefreshToken]:
    return list(RefreshToken.objects.filter(session=session, used_at__isnull=True))


@pytest.mark.postgres
@pytest.mark.parametrize("grace", [0], indirect=True)
def test_concurrent_refreshes_without_grace_never_leave_two_live_tokens(
    live_server: Any,
    refresh_url: str,
    user: Any,
    password_credentials: dict[str, str],
    grace: int,
) -> None:
    first = obtain(live_server.url, password_credentials)

    responses = refresh_all_at_once(refresh_url, first["refresh_token"])

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 401}, statuses
    assert statuses.count(200) == 1, statuses
    for response in responses:
        if response.status_code == 401:
            assert response.json()["error"] == "invalid_grant"
    session = Session.objects.get(user=user)
    assert RefreshToken.objects.filter(session=session).count() == 2
    assert len(live_members(session)) <= 1
    # A rotated token came back after the (zero) grace window: reuse, the session is revoked.
    assert session.revoked_at is not None
    assert session.revoke_reason == "refresh_token_reused"
    winner = next(response.json() for response in responses if response.status_code == 200)
    again = requests.post(
        refresh_url, json={"refresh_token": winner["refresh_token"]}, headers=CLOSE, timeout=10
    )
    assert again.status_code == 401


@pytest.mark.postgres
@pytest.mark.parametrize("grace", [30], indirect=True)
def test_concurrent_retries_inside_the_grace_window_all_succeed_with_one_survivor(
    live_server: Any,
    refresh_url: str,
    user: Any,
    password_credentials: dict[str, str],
    grace: int,
) -> None:
    first = obtain(live_server.url, password_credentials)

    responses = refresh_all_at_once(refresh_url, first["refresh_token"])

    statuses = [response.status_code for response in responses]
    assert statuses == [200] * CONCURRENT_REQUESTS, statuses
    returned = [response.json()["refresh_token"] for response in responses]
    assert len(set(returned)) == CONCURRENT_REQUESTS
    session = Session.objects.get(user=user)
    assert session.revoked_at is None
    assert RefreshToken.objects.filter(session=session).count() == CONCURRENT_REQUESTS + 1
    survivors = live_members(session)
    assert len(survivors) == 1
    (survivor,) = [token for token in returned if digest(token) == survivors[0].token_hash]

    following = requests.post(
        refresh_url, json={"refresh_token": survivor}, headers=CLOSE, timeout=10
    )

    assert following.status_code == 200, following.text
    assert Session.objects.filter(user=user).count() == 1
    assert len(live_members(session)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("grace", [0], indirect=True)
def test_without_grace_a_refresh_that_lost_the_race_is_reuse(user: Any, grace: int) -> None:
    rotated_at = timezone.now()
    issued = sessions.start(user, service=Session.Service.PASSWORD, now=rotated_at)
    sessions.rotate(issued.refresh_token, service=Session.Service.PASSWORD, now=rotated_at)

    with pytest.raises(sessions.RefreshTokenReused):
        sessions.rotate(
            issued.refresh_token,
            service=Session.Service.PASSWORD,
            now=rotated_at - timedelta(milliseconds=5),
        )

    assert Session.objects.get(pk=issued.session.pk).revoke_reason == "refresh_token_reused"


@pytest.mark.django_db
@pytest.mark.parametrize("grace", [30], indirect=True)
def test_with_grace_a_refresh_that_lost_the_race_is_a_retry(user: Any, grace: int) -> None:
    rotated_at = timezone.now()
    issued = sessions.start(user, service=Session.Service.PASSWORD, now=rotated_at)
    successor = sessions.rotate(
        issued.refresh_token, service=Session.Service.PASSWORD, now=rotated_at
    )

    retried = sessions.rotate(
        issued.refresh_token,
        service=Session.Service.PASSWORD,
        now=rotated_at - timedelta(milliseconds=5),
    )

    session = Session.objects.get(pk=issued.session.pk)
    assert session.revoked_at is None
    (survivor,) = live_members(session)
    assert survivor.token_hash == digest(retried.refresh_token)
    assert survivor.token_hash != digest(successor.refresh_token)
