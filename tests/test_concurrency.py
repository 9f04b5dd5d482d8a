"""Concurrency against PostgreSQL's row locks: concurrent refreshes of one refresh token in each
service (password, API key, OAuth 2.0) over real HTTP, with and without the retry grace window;
concurrent logouts of one session; and API-key secret rotations and revocations racing each
other in threads with their own database connections and in ``manage.py`` processes.

A request reads its clock before it waits for the session's lock, so the loser of a race can
carry an earlier time than the rotation that beat it: two tests pin what that means.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from email.message import Message
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
import requests
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings
from django.utils import timezone
from oauth2_provider.models import RefreshToken as DOTRefreshToken

from django_tokens import api_keys, sessions
from django_tokens.api_keys import IssuedSecret
from django_tokens.crypto import digest
from django_tokens.models import ApiKey, AuditEvent, RefreshToken, Session
from tests.test_api_key_multiprocess import CREDENTIALS_REFUSED, REFRESH_REFUSED, sign_assertion
from tests.test_multiprocess import REPO_ROOT, _test_database_url
from tests.test_oauth2_code_flow import WebClient, obtain_tokens, register, signed_in_browser

CONCURRENT_REQUESTS = 20
#: Concurrent requests of the API-key and OAuth 2.0 races, and threads of the secret races.
MANY = 32
# The live server's request threads close their database connections when the HTTP connection
# closes; without keep-alive that is right after each response.
CLOSE = {"Connection": "close"}
Action = AuditEvent.Action
T = TypeVar("T")


@pytest.fixture
def grace(request: pytest.FixtureRequest) -> Iterator[int]:
    with override_settings(
        DJANGO_TOKENS={**settings.DJANGO_TOKENS, "REFRESH_REUSE_GRACE": request.param}
    ):
        yield request.param


def _request_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "process_request_thread" in thread.name]


@pytest.fixture
def base_url(live_server: Any) -> Iterator[str]:
    """The live server's URL; afterwards every request thread has ended and closed its
    database connection, so the database can be flushed."""
    yield str(live_server.url)
    for thread in _request_threads():
        thread.join(timeout=10)
    assert not _request_threads()


@pytest.fixture
def refresh_url(base_url: str) -> str:
    return f"{base_url}/api/token/refresh"


def obtain(base_url: str, credentials: dict[str, str]) -> dict[str, Any]:
    response = requests.post(f"{base_url}/api/token", json=credentials, headers=CLOSE, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass(frozen=True)
class Answer:
    """An HTTP response, read in full."""

    status_code: int
    headers: Message
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def connected(url: str, count: int) -> list[http.client.HTTPConnection]:
    """``count`` connections to the server of ``url``, opened one after the other, so that
    requests sent on them later start together without queueing at the listening socket."""
    parts = urlsplit(url)
    opened = []
    for _ in range(count):
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        connection.connect()
        opened.append(connection)
    return opened


def send(
    connection: http.client.HTTPConnection,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request on ``connection``, which is closed afterwards."""
    try:
        headers = {**CLOSE, **(headers or {})}
        connection.request(method, urlsplit(url).path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def all_at_once(
    count: int,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> list[Answer]:
    """The same request from ``count`` threads on connections opened beforehand, released
    together by a barrier; the answers in thread order."""
    barrier = threading.Barrier(count)

    def run(connection: http.client.HTTPConnection) -> Answer:
        barrier.wait(timeout=10)
        return send(connection, method, url, body=body, headers=headers)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, connected(url, count)))


def refresh_all_at_once(
    url: str, refresh_token: str, count: int = CONCURRENT_REQUESTS
) -> list[Answer]:
    """POST the same refresh token from many threads, released together by a barrier."""
    body = json.dumps({"refresh_token": refresh_token}).encode()
    return all_at_once(count, "POST", url, body=body, headers={"Content-Type": "application/json"})


def in_threads(count: int, work: Callable[[int], T]) -> list[T | Exception]:
    """``work(i)`` in ``count`` threads released together, each on a database connection of
    its own (closed when it ends); what each returned or raised, in thread order."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T | Exception:
        try:
            barrier.wait(timeout=10)
            return work(index)
        except Exception as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


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


# -- the API-key service: POST /auth/refresh -------------------------------------------------


@pytest.fixture
def api_key(user: Any) -> IssuedSecret:
    return api_keys.issue(user, name="concurrent")


def exchanged(base_url: str, issued: IssuedSecret) -> dict[str, Any]:
    headers = {**CLOSE, "Authorization": f"Bearer {sign_assertion(issued)}"}
    response = requests.post(f"{base_url}/auth/api-key", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def stored_hash_of_refresh_jwt(refresh_jwt: str) -> str:
    """The stored hash of a refresh JWT: the digest of its secret, the ``jti``."""
    return digest(jwt.decode(refresh_jwt, options={"verify_signature": False})["jti"])


def me_status(base_url: str, access_token: str) -> int:
    headers = {**CLOSE, "Authorization": f"Bearer {access_token}"}
    return requests.get(f"{base_url}/api/me", headers=headers, timeout=10).status_code


def audit_count(action: str, **fields: Any) -> int:
    return AuditEvent.objects.filter(action=action, **fields).count()


@pytest.mark.postgres
@pytest.mark.parametrize("grace", [0], indirect=True)
def test_concurrent_api_key_refreshes_without_grace_have_one_winner_and_revoke_the_session(
    base_url: str, api_key: IssuedSecret, grace: int
) -> None:
    first = exchanged(base_url, api_key)

    responses = refresh_all_at_once(f"{base_url}/auth/refresh", first["refresh_token"], MANY)

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 401}, statuses
    assert statuses.count(200) == 1, statuses
    for response in responses:
        if response.status_code == 401:
            assert response.json() == REFRESH_REFUSED
    winner = next(response.json() for response in responses if response.status_code == 200)
    assert winner["session_state"] == first["session_state"]
    session = Session.objects.get(pk=first["session_state"])
    assert RefreshToken.objects.filter(session=session).count() == 2
    assert len(live_members(session)) <= 1
    assert session.revoke_reason == "refresh_token_reused"
    assert audit_count(Action.TOKEN_REFRESHED, session_id=session.pk) == 1
    assert audit_count(Action.REFRESH_REUSE_DETECTED, session_id=session.pk) == 1
    assert audit_count(Action.SESSION_REVOKED, session_id=session.pk) == 1
    again = requests.post(
        f"{base_url}/auth/refresh",
        json={"refresh_token": winner["refresh_token"]},
        headers=CLOSE,
        timeout=10,
    )
    assert again.status_code == 401
    assert again.json() == REFRESH_REFUSED
    assert me_status(base_url, winner["access_token"]) == 401


@pytest.mark.postgres
@pytest.mark.parametrize("grace", [30], indirect=True)
def test_concurrent_api_key_refresh_retries_inside_the_grace_window_keep_one_session(
    base_url: str, api_key: IssuedSecret, grace: int
) -> None:
    first = exchanged(base_url, api_key)

    responses = refresh_all_at_once(f"{base_url}/auth/refresh", first["refresh_token"], MANY)

    assert [response.status_code for response in responses] == [200] * MANY, [
        response.text for response in responses if response.status_code != 200
    ]
    bodies = [response.json() for response in responses]
    assert {body["session_state"] for body in bodies} == {first["session_state"]}
    assert len({body["refresh_token"] for body in bodies}) == MANY
    session = Session.objects.get(pk=first["session_state"])
    assert session.revoked_at is None
    assert RefreshToken.objects.filter(session=session).count() == MANY + 1
    (live,) = live_members(session)
    (survivor,) = [
        body
        for body in bodies
        if stored_hash_of_refresh_jwt(body["refresh_token"]) == live.token_hash
    ]
    assert audit_count(Action.TOKEN_REFRESHED, session_id=session.pk) == MANY
    assert audit_count(Action.REFRESH_REUSE_DETECTED, session_id=session.pk) == 0

    following = requests.post(
        f"{base_url}/auth/refresh",
        json={"refresh_token": survivor["refresh_token"]},
        headers=CLOSE,
        timeout=10,
    )

    assert following.status_code == 200, following.text
    assert following.json()["session_state"] == first["session_state"]
    assert len(live_members(session)) == 1


# -- OAuth 2.0: POST /oauth2/token with grant_type=refresh_token ----------------------------

CALLBACK = "https://client.example.com/callback"


@pytest.fixture
def spa(user: Any) -> WebClient:
    return register("public", "concurrent-spa", CALLBACK)


@pytest.fixture
def oauth_tokens(user: Any, spa: WebClient, base_url: str) -> dict[str, Any]:
    """Tokens from the code flow with PKCE, in the Django test client."""
    return obtain_tokens(signed_in_browser(user), spa, scope="openid profile read")


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def oauth_refresh_form(spa: WebClient, refresh_token: str) -> bytes:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return urlencode({**form, "client_id": spa.client_id}).encode()


def oauth_refresh(base_url: str, spa: WebClient, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{base_url}/oauth2/token",
        data=oauth_refresh_form(spa, refresh_token),
        headers={**CLOSE, **FORM},
        timeout=30,
    )


def oauth_refresh_all_at_once(base_url: str, spa: WebClient, refresh_token: str) -> list[Answer]:
    body = oauth_refresh_form(spa, refresh_token)
    return all_at_once(MANY, "POST", f"{base_url}/oauth2/token", body=body, headers=FORM)


def family_of(refresh_token: str) -> Any:
    checksum = sessions.token_checksum(refresh_token)
    return DOTRefreshToken.objects.get(token_checksum=checksum).token_family


def oauth_refreshes_recorded(spa: WebClient) -> int:
    return AuditEvent.objects.filter(
        action=Action.TOKEN_REFRESHED,
        client_id=spa.client_id,
        detail__grant_type="refresh_token",
    ).count()


@pytest.mark.postgres
@pytest.mark.parametrize("grace", [0], indirect=True)
def test_concurrent_oauth2_refreshes_without_grace_have_one_winner_and_revoke_the_family(
    base_url: str, spa: WebClient, oauth_tokens: dict[str, Any], grace: int
) -> None:
    responses = oauth_refresh_all_at_once(base_url, spa, oauth_tokens["refresh_token"])

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 400}, statuses
    assert statuses.count(200) == 1, statuses
    for response in responses:
        if response.status_code == 400:
            assert response.json()["error"] == "invalid_grant"
    winner = next(response.json() for response in responses if response.status_code == 200)
    family = family_of(oauth_tokens["refresh_token"])
    assert family_of(winner["refresh_token"]) == family
    members = DOTRefreshToken.objects.filter(token_family=family)
    assert members.count() == 2
    assert not members.filter(revoked__isnull=True).exists()
    assert oauth_refreshes_recorded(spa) == 1
    assert audit_count(Action.REFRESH_REUSE_DETECTED, client_id=spa.client_id) >= 1
    again = oauth_refresh(base_url, spa, winner["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert me_status(base_url, winner["access_token"]) == 401


@pytest.mark.postgres
@pytest.mark.parametrize("grace", [30], indirect=True)
def test_concurrent_oauth2_refresh_retries_inside_the_grace_window_keep_one_live_member(
    base_url: str, spa: WebClient, oauth_tokens: dict[str, Any], grace: int
) -> None:
    responses = oauth_refresh_all_at_once(base_url, spa, oauth_tokens["refresh_token"])

    assert [response.status_code for response in responses] == [200] * MANY, [
        response.text for response in responses if response.status_code != 200
    ]
    bodies = [response.json() for response in responses]
    assert len({body["refresh_token"] for body in bodies}) == MANY
    family = family_of(oauth_tokens["refresh_token"])
    assert {family_of(body["refresh_token"]) for body in bodies} == {family}
    members = DOTRefreshToken.objects.filter(token_family=family)
    assert members.count() == MANY + 1
    (live,) = members.filter(revoked__isnull=True)
    (survivor,) = [
        body
        for body in bodies
        if sessions.token_checksum(body["refresh_token"]) == live.token_checksum
    ]
    # Each retry superseded the answer before it: only the survivor's access token is live.
    accepted = [body for body in bodies if me_status(base_url, body["access_token"]) == 200]
    assert accepted == [survivor]
    assert oauth_refreshes_recorded(spa) == MANY
    assert audit_count(Action.REFRESH_REUSE_DETECTED, client_id=spa.client_id) == 0

    following = oauth_refresh(base_url, spa, survivor["refresh_token"])

    assert following.status_code == 200, following.text
    assert members.filter(revoked__isnull=True).count() == 1
    assert me_status(base_url, following.json()["access_token"]) == 200


# -- logout: POST /api/token/logout and /auth/logout -----------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("service", ["password", "api_key"])
def test_concurrent_logouts_of_one_session_revoke_it_once(
    base_url: str,
    user: Any,
    password_credentials: dict[str, str],
    api_key: IssuedSecret,
    service: str,
) -> None:
    if service == "password":
        access_token, path = obtain(base_url, password_credentials)["access_token"], "api/token"
    else:
        access_token, path = exchanged(base_url, api_key)["access_token"], "auth"
    bearer = {"Authorization": f"Bearer {access_token}"}

    responses = all_at_once(MANY, "POST", f"{base_url}/{path}/logout", headers=bearer)

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {204, 401}, statuses
    assert statuses.count(204) == 1, statuses
    for response in responses:
        if response.status_code == 401:
            assert response.json()["error"] == "invalid_token"
    session = Session.objects.get(user=user)
    assert session.revoke_reason == "logout"
    assert audit_count(Action.SESSION_REVOKED, session_id=session.pk) == 1
    assert me_status(base_url, access_token) == 401


# -- API-key secrets: rotations and revocations racing each other ----------------------------

#: Thread ``i`` rotates with a grace of GRACE_BASE + i seconds, which its audit entry records:
#: the audit trail then tells the order in which the rotations took the key's row lock.
GRACE_BASE = 3600
#: ``manage.py rotate_api_key_secret`` processes started together.
COMMAND_PROCESSES = 4


def assertion_for(key_id: str, secret: str) -> str:
    now = int(timezone.now().timestamp())
    claims = {"iat": now, "exp": now + 60, "jti": os.urandom(16).hex()}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id})


def accepted_secrets(key_id: str, candidates: list[str]) -> set[str]:
    """The secrets among ``candidates`` whose assertions ``POST /auth/api-key`` exchanges for
    tokens; every other one is refused with 401 ``invalid_credentials``. (The failure
    throttles are off here: they would turn refusals past the limit into 429.)"""
    client = Client()
    accepted = set()
    unthrottled = {"THROTTLE_FAILURES_PER_KEY": 0, "THROTTLE_FAILURES_PER_IP": 0}
    with override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **unthrottled}):
        for secret in candidates:
            assertion = assertion_for(key_id, secret)
            response = client.post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion}")
            if response.status_code == 200:
                accepted.add(secret)
            else:
                assert response.status_code == 401, response.content
                assert response.json() == CREDENTIALS_REFUSED
    return accepted


def rotation_order(key_id: str) -> list[AuditEvent]:
    """The key's rotation entries in the order their rotations held its row lock (each entry's
    id is drawn inside the lock)."""
    return list(
        AuditEvent.objects.filter(action=Action.API_KEY_SECRET_ROTATED, api_key_id=key_id).order_by(
            "id"
        )
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_secret_rotations_leave_the_last_two_secrets_and_lose_none(user: Any) -> None:
    issued = api_keys.issue(user, name="rotated")
    key_id = issued.api_key.key_id

    results = in_threads(
        MANY, lambda i: api_keys.rotate_secret(key_id, grace=timedelta(seconds=GRACE_BASE + i))
    )

    assert all(isinstance(result, IssuedSecret) for result in results), results
    shown = [result.secret for result in results if isinstance(result, IssuedSecret)]
    assert len(set(shown)) == MANY
    entries = rotation_order(key_id)
    order = [entry.detail["grace_seconds"] - GRACE_BASE for entry in entries]
    assert sorted(order) == list(range(MANY))
    assert {(entry.user_id_value, entry.username) for entry in entries} == {(str(user.pk), "alice")}
    last, before_last = shown[order[-1]], shown[order[-2]]
    key = ApiKey.objects.get(key_id=key_id)
    # The previous secret is the one the last rotation replaced, for the last rotation's grace.
    assert key.previous_secret_expires_at == entries[-1].created_at + timedelta(
        seconds=GRACE_BASE + order[-1]
    )
    verifiable = api_keys.secrets_for_verification(key, timezone.now())
    assert verifiable == [last.encode(), before_last.encode()]

    assert accepted_secrets(key_id, [issued.secret, *shown]) == {last, before_last}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rotations_racing_revocations_never_bring_a_revoked_key_back(user: Any) -> None:
    issued = api_keys.issue(user, name="raced")
    key_id = issued.api_key.key_id
    opened = [
        Client()
        .post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {sign_assertion(issued)}")
        .json()["session_state"]
        for _ in range(2)
    ]
    revokers = {MANY // 4, MANY // 2, 3 * MANY // 4}

    def rotate_or_revoke(index: int) -> Any:
        if index in revokers:
            return api_keys.revoke(key_id)
        return api_keys.rotate_secret(key_id, grace=timedelta(seconds=GRACE_BASE + index))

    results = in_threads(MANY, rotate_or_revoke)

    # The key's row lock serialises them: one revocation finds the sessions live.
    assert sorted(results[index] for index in revokers) == [0, 0, len(opened)]
    rotated = {i: r for i, r in enumerate(results) if isinstance(r, IssuedSecret)}
    refused = [r for r in results if isinstance(r, api_keys.ApiKeyNotLive)]
    assert len(rotated) + len(refused) == MANY - len(revokers), results
    key = ApiKey.objects.get(key_id=key_id)
    assert key.revoked_at is not None
    (revocation,) = AuditEvent.objects.filter(action=Action.API_KEY_REVOKED, api_key_id=key_id)
    entries = rotation_order(key_id)
    assert sorted(entry.detail["grace_seconds"] - GRACE_BASE for entry in entries) == sorted(
        rotated
    )
    # Every rotation that happened, happened before the revocation; none after it.
    assert all(entry.id < revocation.id for entry in entries)
    for session_id in opened:
        session = Session.objects.get(pk=session_id)
        assert session.revoke_reason == "api_key_revoked"
        assert audit_count(Action.SESSION_REVOKED, session_id=session.pk) == 1
    shown = [result.secret for result in rotated.values()]
    assert accepted_secrets(key_id, [issued.secret, *shown]) == set()
    with pytest.raises(api_keys.ApiKeyNotLive):
        api_keys.rotate_secret(key_id)


@pytest.mark.postgres
def test_exchanges_racing_a_revocation_leave_no_live_session(
    base_url: str, api_key: IssuedSecret
) -> None:
    key_id = api_key.api_key.key_id
    url = f"{base_url}/auth/api-key"
    assertions = [sign_assertion(api_key) for _ in range(MANY - 1)]
    opened_connections = connected(url, MANY - 1)

    def exchange_or_revoke(index: int) -> Any:
        if index == MANY - 1:
            return api_keys.revoke(key_id)
        bearer = {"Authorization": f"Bearer {assertions[index]}"}
        return send(opened_connections[index], "POST", url, headers=bearer)

    *responses, revoked = in_threads(MANY, exchange_or_revoke)

    statuses = [response.status_code for response in responses]
    # Refusals past the failure limit of the key (or of the address) are 429.
    assert set(statuses) <= {200, 401, 429}, statuses
    opened = [response.json() for response in responses if response.status_code == 200]
    assert ApiKey.objects.get(key_id=key_id).revoked_at is not None
    assert Session.objects.filter(api_key__key_id=key_id).count() == len(opened)
    assert revoked == len(opened)
    assert not Session.objects.filter(api_key__key_id=key_id, revoked_at__isnull=True).exists()
    for body in opened:
        assert me_status(base_url, body["access_token"]) == 401


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rotate_api_key_secret_commands_in_concurrent_processes_lose_no_secret(
    user: Any,
) -> None:
    issued = api_keys.issue(user, name="rotated by commands")
    key_id = issued.api_key.key_id
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _test_database_url(),
    }
    command = [sys.executable, "manage.py", "rotate_api_key_secret", key_id, "--json"]
    processes = [
        subprocess.Popen(
            [*command, "--grace", str(GRACE_BASE + index)],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(COMMAND_PROCESSES)
    ]
    try:
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert stderr == ""
    shown = [json.loads(stdout)["secret"] for stdout, _ in outputs]
    assert len(set(shown)) == COMMAND_PROCESSES
    entries = rotation_order(key_id)
    assert {entry.actor for entry in entries} == {"manage.py rotate_api_key_secret"}
    order = [entry.detail["grace_seconds"] - GRACE_BASE for entry in entries]
    assert sorted(order) == list(range(COMMAND_PROCESSES))
    last, before_last = shown[order[-1]], shown[order[-2]]
    key = ApiKey.objects.get(key_id=key_id)
    verifiable = api_keys.secrets_for_verification(key, timezone.now())
    assert verifiable == [last.encode(), before_last.encode()]

    assert accepted_secrets(key_id, [issued.secret, *shown]) == {last, before_last}
