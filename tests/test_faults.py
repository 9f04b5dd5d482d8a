"""Faults, mostly under a live gunicorn process on PostgreSQL: the shared Redis killed, frozen
and started again, and the server's PostgreSQL backend terminated in the middle of a token
request.

Redis: what needs the shared cache for safety (failure throttles, assertion replay records)
fails closed with a JSON 503 within the cache client's socket timeouts; what does not (refresh,
client_credentials, verification of access tokens) keeps working; service comes back by
itself when Redis does, and a replay is refused even though Redis lost its records (also
proved in-process, on whichever cache the run uses).

PostgreSQL: a request whose backend is terminated while it waits on a lock answers the
documented JSON 500, leaves nothing half-written, and the same process serves the next
request on a new connection.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.test import Client
from oauth2_provider.models import AccessToken, Application

from django_tokens import api_keys, errors
from django_tokens.api_keys import IssuedSecret
from django_tokens.conf import token_settings
from django_tokens.models import ApiKey, AuditEvent, RefreshToken, Session
from django_tokens.services.api_key import RECORDS_SINCE_KEY, exchange_assertion
from tests.conftest import clear_cache
from tests.test_api_key_multiprocess import sign_assertion as sign_assertion_now
from tests.test_multiprocess import (
    CLOSE,
    STARTUP_TIMEOUT,
    Server,
    _away_from_a_throttle_window_edge,
    _free_port,
    _start,
    _stop,
    _wait_until_answering,
)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
#: Generous bounds: with the example's socket timeouts (1 s) a request waits ~1 s for a hung
#: Redis, 2 s when the keystore's periodic version check falls into it too.
ANSWER_BOUND = 5.0
RECOVERY_BOUND = 5.0
LOCK_WAIT_TIMEOUT = 10.0
UNAVAILABLE = {"error": "temporarily_unavailable", "message": errors.TemporarilyUnavailable.message}
SERVER_ERROR = {"error": "server_error", "message": "Unknown Error Occurred"}
CREDENTIALS_REFUSED = {"error": "invalid_credentials", "message": errors.CREDENTIALS_MESSAGE}
ISSUER = settings.DJANGO_TOKENS["ISSUER"]
TERMINATED = "terminating connection due to administrator command"


def sign_assertion(issued: IssuedSecret, *, after_the_loss: bool = False) -> str:
    """A fresh assertion. ``after_the_loss``: in a later second than the one in which the
    replay store's loss of records was noticed (``iat`` counts whole seconds, so an assertion
    of that second could have been accepted in it just before, and is refused)."""
    if after_the_loss:
        time.sleep(1.01 - time.time() % 1)
    return sign_assertion_now(issued)


# -- a Redis of the test's own -------------------------------------------------------------


class OwnRedis:
    """A redis-server on a spare port of 127.0.0.1, with no snapshots and no append-only file:
    stopped and started again, it has lost every key, as an unpersisted Redis that crashed."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "redis.log"
                pytest.fail(f"redis-server did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """A crash: SIGKILL, nothing saved."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        assert not self.answers()

    def freeze(self) -> None:
        """A hung Redis: connections are accepted by the kernel, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.kill()
            self.process.wait(timeout=10)


def serve(tmp_path: Path, **environment: str) -> Server:
    """One gunicorn process (as ``two_servers`` starts them), with ``environment`` on top."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        server = _start("faults", tmp_path)
    try:
        _wait_until_answering(server, time.monotonic() + STARTUP_TIMEOUT)
    except BaseException:
        _stop(server)
        raise
    return server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"needs the redis-server binary ({REDIS_SERVER}) to start a Redis of its own")
    directory = tmp_path / "redis"
    directory.mkdir()
    redis = OwnRedis(directory)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def api_key(user: Any) -> IssuedSecret:
    return api_keys.issue(user, name="faults")


@pytest.fixture
def service_client() -> tuple[str, str]:
    """A confidential client_credentials client: (client_id, secret)."""
    secret = secrets.token_urlsafe(48)
    application = Application.objects.create(
        name="faults-service",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
    )
    return application.client_id, secret


class Traffic:
    """A client of every flow against one server; each answer is timed."""

    def __init__(self, server: Server, service_client: tuple[str, str]) -> None:
        self.server = server
        self.client_id, self.client_secret = service_client
        self.times: list[float] = []

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**CLOSE, **kwargs.pop("headers", {})}
        started = time.monotonic()
        response = requests.request(
            method, f"{self.server.url}{path}", headers=headers, timeout=30, **kwargs
        )
        self.times.append(time.monotonic() - started)
        assert "Traceback" not in response.text
        return response

    def login(self, password: str = "alice-password") -> requests.Response:
        return self.request("POST", "/api/token", json={"username": "alice", "password": password})

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.request("POST", "/api/token/refresh", json={"refresh_token": refresh_token})

    def logout(self, path: str, access_token: str) -> requests.Response:
        return self.request("POST", path, headers={"Authorization": f"Bearer {access_token}"})

    def exchange(self, assertion: str) -> requests.Response:
        return self.request(
            "POST", "/auth/api-key", headers={"Authorization": f"Bearer {assertion}"}
        )

    def email_login(self) -> requests.Response:
        return self.request(
            "POST", "/auth/login", json={"email": "alice@example.com", "password": "alice-password"}
        )

    def key_refresh(self, refresh_token: str) -> requests.Response:
        return self.request("POST", "/auth/refresh", json={"refresh_token": refresh_token})

    def client_credentials(self) -> requests.Response:
        return self.request(
            "POST",
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "profile read"},
            auth=(self.client_id, self.client_secret),
        )

    def me(self, access_token: str) -> requests.Response:
        return self.request("GET", "/api/me", headers={"Authorization": f"Bearer {access_token}"})


def ok(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == UNAVAILABLE


def assert_refused(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == CREDENTIALS_REFUSED


def assert_no_traceback(server: Server) -> None:
    assert "Traceback" not in server.log.read_text(errors="replace"), server.log_tail()


@pytest.fixture
def traffic(
    transactional_db: None,
    tmp_path: Path,
    own_redis: OwnRedis,
    user: Any,
    service_client: tuple[str, str],
) -> Iterator[Traffic]:
    """The example app on this test's own Redis; no traceback may reach its log."""
    server = serve(tmp_path, REDIS_URL=own_redis.url)
    try:
        yield Traffic(server, service_client)
    finally:
        _stop(server)
    assert_no_traceback(server)


def wait_for_service(traffic: Traffic) -> float:
    """Seconds until a password login succeeds again (503 meanwhile)."""
    started = time.monotonic()
    while (response := traffic.login()).status_code != 200:
        assert_unavailable(response)
        assert time.monotonic() - started < RECOVERY_BOUND, "no recovery in time"
        time.sleep(0.05)
    return time.monotonic() - started


# -- Redis ---------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_killed_or_frozen_fails_closed_keeps_verifying_and_recovers_by_itself(
    traffic: Traffic, own_redis: OwnRedis, api_key: IssuedSecret
) -> None:
    """Every flow before; 503s, working refresh and verification, bounded answer times and
    one log line per failure while Redis is down or hung; the same service, replays refused
    and failures counted, once it answers again, with no restart of the app."""
    # Before: every flow works, a replay is refused, a logged-out session's token too.
    password = ok(traffic.refresh(ok(traffic.login())["refresh_token"]))
    used = sign_assertion(api_key)
    key = ok(traffic.exchange(used))
    assert_refused(traffic.exchange(used))
    email = ok(traffic.email_login())
    client = ok(traffic.client_credentials())
    revoked = ok(traffic.login())
    assert traffic.logout("/api/token/logout", revoked["access_token"]).status_code == 204
    for tokens in (password, key, email, client):
        assert traffic.me(tokens["access_token"]).status_code == 200
    assert traffic.me(revoked["access_token"]).status_code == 401

    own_redis.kill()
    traffic.times.clear()
    # Throttles and replay records cannot be consulted: refused with 503, credentials
    # unchecked (a wrong password gets no 401 that nothing could count).
    signed_while_down = sign_assertion(api_key)
    assert_unavailable(traffic.login())
    assert_unavailable(traffic.login(password="not-her-password"))
    assert_unavailable(traffic.email_login())
    assert_unavailable(traffic.exchange(signed_while_down))
    assert_unavailable(traffic.exchange(used))
    # What needs no shared cache keeps working: refresh rotation, client_credentials.
    password = ok(traffic.refresh(password["refresh_token"]))
    key = ok(traffic.key_refresh(key["refresh_token"]))
    client = ok(traffic.client_credentials())
    # Access tokens verify with the keys in memory, by signature alone (README): revocation
    # marks cannot be read, so a logged-out session's token passes while Redis is down.
    for tokens in (password, key, email, client):
        assert traffic.me(tokens["access_token"]).status_code == 200
    assert traffic.me(revoked["access_token"]).status_code == 200
    # A logout still revokes the session in the database: its refresh token is refused.
    assert traffic.logout("/auth/logout", email["access_token"]).status_code == 204
    assert traffic.key_refresh(email["refresh_token"]).status_code == 401
    killed_times = list(traffic.times)
    assert max(killed_times) < ANSWER_BOUND, killed_times

    own_redis.start()
    recovery_after_kill = wait_for_service(traffic)

    # Replays are refused again: the assertion accepted before the outage, although Redis
    # lost its record, and the one signed while Redis was down (never accepted, but signed
    # before the records were lost while its key opened a session: it could be a replay).
    assert_refused(traffic.exchange(used))
    assert_refused(traffic.exchange(signed_while_down))
    fresh = sign_assertion(api_key, after_the_loss=True)
    key = ok(traffic.exchange(fresh))
    assert_refused(traffic.exchange(fresh))
    ok(traffic.email_login())
    client = ok(traffic.client_credentials())
    for tokens in (password, key, client):
        assert traffic.me(tokens["access_token"]).status_code == 200
    # Revocation marks are written and read again.
    logged_out = ok(traffic.login())
    assert traffic.logout("/api/token/logout", logged_out["access_token"]).status_code == 204
    assert traffic.me(logged_out["access_token"]).status_code == 401
    # Marks that Redis lost, or never got, are gone (README): those access tokens pass until
    # they expire, while the database keeps refusing their refresh tokens.
    assert traffic.me(revoked["access_token"]).status_code == 200
    assert traffic.me(email["access_token"]).status_code == 200
    assert traffic.refresh(revoked["refresh_token"]).status_code == 401
    # A hung Redis (connections accepted, nothing answered) costs each request at most the
    # cache client's socket timeouts, then the same answers as a dead one.
    own_redis.freeze()
    try:
        traffic.times.clear()
        assert_unavailable(traffic.login())
        assert_unavailable(traffic.exchange(sign_assertion(api_key)))
        assert traffic.me(password["access_token"]).status_code == 200
        password = ok(traffic.refresh(password["refresh_token"]))
        frozen_times = list(traffic.times)
    finally:
        own_redis.thaw()
    assert max(frozen_times) < ANSWER_BOUND, frozen_times
    recovery_after_freeze = wait_for_service(traffic)
    ok(traffic.exchange(sign_assertion(api_key)))
    assert traffic.me(password["access_token"]).status_code == 200
    # Failures are counted again (last: alice stays throttled).
    _away_from_a_throttle_window_edge()
    for _ in range(token_settings.THROTTLE_FAILURES_PER_USERNAME):
        assert traffic.login(password="not-her-password").status_code == 401
    throttled = traffic.login(password="not-her-password")
    assert throttled.status_code == 429, throttled.text
    assert throttled.json()["error"] == "too_many_attempts"
    log = traffic.server.log.read_text(errors="replace")
    assert "Failure throttle unreachable; refusing the attempt: " in log
    assert "Revocation marks unreadable; verifying by signature only: " in log

    print(
        f"\nredis killed: {len(killed_times)} answers, slowest {max(killed_times):.3f} s; "
        f"served again {recovery_after_kill:.3f} s after redis-server answered\n"
        f"redis frozen: answers {', '.join(f'{t:.3f}' for t in frozen_times)} s; "
        f"served again {recovery_after_freeze:.3f} s after SIGCONT"
    )


# -- the replay store losing its records ---------------------------------------------------


def post_assertion(client: Client, assertion: str) -> Any:
    return client.post("/auth/api-key", headers={"Authorization": f"Bearer {assertion}"})


@pytest.mark.django_db
def test_replays_stay_refused_after_the_replay_store_lost_its_records(
    client: Client, api_key: IssuedSecret
) -> None:
    """The shared cache losing its keys (a Redis restarted without persistence, a flush)
    reopens none of the assertions it recorded; one signed after the loss is accepted once."""
    used, signed_unused = sign_assertion(api_key), sign_assertion(api_key)
    assert post_assertion(client, used).status_code == 200

    clear_cache()

    assert post_assertion(client, used).json() == CREDENTIALS_REFUSED
    # Signed before the loss, while its key opened a session: it could be a replay.
    assert post_assertion(client, signed_unused).json() == CREDENTIALS_REFUSED
    fresh = sign_assertion(api_key, after_the_loss=True)
    assert post_assertion(client, fresh).status_code == 200
    assert post_assertion(client, fresh).json() == CREDENTIALS_REFUSED
    assert Session.objects.filter(api_key=api_key.api_key).count() == 2


@pytest.mark.django_db
def test_a_fresh_replay_store_accepts_assertions_signed_before_its_first_use(
    client: Client, api_key: IssuedSecret
) -> None:
    """Nothing can be replayed of a key that opened no session before the store's records
    began: assertions signed a moment before its first use are each accepted once."""
    first, second = sign_assertion(api_key), sign_assertion(api_key)
    clear_cache()
    time.sleep(0.01)

    assert post_assertion(client, first).status_code == 200
    assert post_assertion(client, second).status_code == 200
    assert post_assertion(client, first).json() == CREDENTIALS_REFUSED
    assert post_assertion(client, second).json() == CREDENTIALS_REFUSED


@pytest.mark.django_db
def test_an_exchange_that_read_the_clock_before_the_records_began_is_not_older_than_them(
    api_key: IssuedSecret,
) -> None:
    """Two exchanges reach a fresh replay store at once: one reads the clock, the other then
    writes when the records began, a few milliseconds later, and the first is accepted under
    those records. Its session opens no earlier than they began, so the key's next assertion
    of the same second is accepted: nothing of that key was accepted before the records."""
    clear_cache()
    issued_at = int(time.time())
    read_clock = datetime.fromtimestamp(issued_at, UTC) + timedelta(milliseconds=500)
    stamp = int(read_clock.timestamp() * 1000) + 7
    caches[token_settings.CACHE_ALIAS].add(RECORDS_SINCE_KEY, stamp, timeout=None)

    def signed() -> str:
        claims = {"iat": issued_at, "exp": issued_at + 60, "jti": uuid.uuid4().hex}
        headers = {"kid": api_key.api_key.key_id}
        return jwt.encode(claims, api_key.secret, algorithm="HS256", headers=headers)

    first, second = signed(), signed()
    exchange_assertion(first, issuer=ISSUER, client_ip=None, now=read_clock)
    opened = Session.objects.get(api_key=api_key.api_key)
    assert opened.created_at >= datetime.fromtimestamp(stamp / 1000, UTC)

    later = read_clock + timedelta(milliseconds=20)
    exchange_assertion(second, issuer=ISSUER, client_ip=None, now=later)
    with pytest.raises(errors.InvalidCredentials):
        exchange_assertion(first, issuer=ISSUER, client_ip=None, now=later)
    assert Session.objects.filter(api_key=api_key.api_key).count() == 2


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
def pg_server(transactional_db: None, tmp_path: Path, user: Any) -> Iterator[tuple[Server, str]]:
    """The example app, its database connections named by ``application_name``."""
    application_name = f"django-tokens-faults-{uuid.uuid4().hex[:12]}"
    server = serve(tmp_path, PGAPPNAME=application_name)
    try:
        yield server, application_name
    finally:
        _stop(server)


def _server_backends(application_name: str, condition: str) -> list[int]:
    with connection.cursor() as cursor:
        # Activity statistics are a snapshot per transaction: take a fresh one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND " + condition,
            [application_name],
        )
        return [pid for (pid,) in cursor.fetchall()]


def terminate_backend_when(application_name: str, condition: str) -> None:
    """Terminate the server's one backend once it matches ``condition``."""
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT
    while not (pids := _server_backends(application_name, condition)):
        assert time.monotonic() < deadline, f"no backend of the server with {condition}"
        time.sleep(0.02)
    assert len(pids) == 1, pids
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
        assert cursor.fetchone() == (True,)


def interrupted(application_name: str, lock: str, send: Callable[[], Any], *params: Any) -> Any:
    """Hold ``lock`` in this test's transaction, send the request, terminate the server's
    backend once it waits on the lock, then release the lock; the request's answer."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(lock, params)
            answer = pool.submit(send)
            terminate_backend_when(application_name, "wait_event_type = 'Lock'")
        return answer.result(timeout=30)


def lock_audit_table() -> str:
    """The audit entry is the last write of each token transaction: in SHARE mode the server
    reads on and writes everything else, then waits to insert it."""
    return f"LOCK TABLE {connection.ops.quote_name(AuditEvent._meta.db_table)} IN SHARE MODE"


def lock_session_row() -> str:
    """The row a refresh rotation locks first, before it writes anything."""
    table = connection.ops.quote_name(Session._meta.db_table)
    return f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE"


def assert_server_error(response: requests.Response, body: dict[str, Any]) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == body
    assert "Traceback" not in response.text


def assert_logged_terminations(server: Server, count: int) -> None:
    """The log holds ``count`` unexpected errors, each logged with the traceback of the
    terminated connection and nothing else, and the worker was never restarted."""
    log = server.log.read_text(errors="replace")
    logged = re.findall(
        r"^Unexpected error in (?:a token endpoint|the OAuth 2\.0 token endpoint)\.$", log, re.M
    )
    assert len(logged) == count, server.log_tail()
    raised = re.findall(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n)+(.*)", log, re.M)
    assert raised, server.log_tail()
    assert all(line.endswith(TERMINATED) for line in raised), raised
    assert log.count("Booting worker") == 1, server.log_tail()


def members(session: Session) -> list[tuple[int, Any]]:
    return list(
        RefreshToken.objects.filter(session=session).order_by("pk").values_list("pk", "used_at")
    )


def _password_refresh(server: Server, application_name: str, user: Any, tokens: dict) -> None:
    session = Session.objects.get(user=user, service=Session.Service.PASSWORD)
    before = members(session)

    def send() -> requests.Response:
        return server.post("/api/token/refresh", {"refresh_token": tokens["refresh_token"]})

    response = interrupted(application_name, lock_session_row(), send, session.pk)
    assert_server_error(response, SERVER_ERROR)
    assert members(session) == before
    response = interrupted(application_name, lock_audit_table(), send)
    assert_server_error(response, SERVER_ERROR)
    assert members(session) == before

    # Nothing lost: the same refresh token rotates, on the same process.
    rotated = send()
    assert rotated.status_code == 200, rotated.text
    assert server.me(rotated.json()["access_token"]).status_code == 200
    after = members(session)
    assert len(after) == len(before) + 1
    assert after[0][1] is not None
    assert Session.objects.get(pk=session.pk).revoked_at is None


def _assertion_exchange(server: Server, application_name: str, api_key: IssuedSecret) -> None:
    traffic = Traffic(server, ("", ""))
    sessions = Session.objects.filter(api_key=api_key.api_key)
    opened = sessions.count()
    last_used = ApiKey.objects.get(pk=api_key.api_key.pk).last_used_at
    assertion = sign_assertion(api_key)

    response = interrupted(
        application_name, lock_audit_table(), lambda: traffic.exchange(assertion)
    )

    assert_server_error(response, SERVER_ERROR)
    assert sessions.count() == opened
    assert RefreshToken.objects.filter(session__api_key=api_key.api_key).count() == opened
    assert ApiKey.objects.get(pk=api_key.api_key.pk).last_used_at == last_used
    # Its replay record was written before the session's transaction and stays: had the
    # commit reached the database unseen, no second session may come from the assertion.
    assert_refused(traffic.exchange(assertion))
    tokens = ok(traffic.exchange(sign_assertion(api_key)))
    assert traffic.me(tokens["access_token"]).status_code == 200
    assert sessions.count() == opened + 1


def _client_credentials(
    server: Server, application_name: str, service_client: tuple[str, str]
) -> None:
    traffic = Traffic(server, service_client)
    issued = AccessToken.objects.count()

    response = interrupted(application_name, lock_audit_table(), traffic.client_credentials)

    assert response.status_code == 500, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == errors.oauth2_body("server_error", "Unknown Error Occurred", 500)
    assert AccessToken.objects.count() == issued
    tokens = ok(traffic.client_credentials())
    assert traffic.me(tokens["access_token"]).status_code == 200
    assert AccessToken.objects.count() == issued + 1


@pytest.mark.postgres
@pytest.mark.redis
def test_token_transactions_cut_by_a_terminated_backend_roll_back_and_the_process_reconnects(
    pg_server: tuple[Server, str],
    user: Any,
    password_credentials: dict[str, str],
    api_key: IssuedSecret,
    service_client: tuple[str, str],
) -> None:
    """Each token transaction, its backend terminated while it waits on a lock: a JSON 500,
    no row of it left behind, and the same process answers the next request. A connection
    dropped between requests (kept for ``CONN_MAX_AGE``) fails no request at all."""
    server, application_name = pg_server
    # Keys created, each flow's code and the connection warm before any lock is taken.
    tokens = ok(server.post("/api/token", password_credentials))
    ok(Traffic(server, service_client).client_credentials())
    ok(Traffic(server, service_client).exchange(sign_assertion(api_key)))

    _password_refresh(server, application_name, user, tokens)
    _assertion_exchange(server, application_name, api_key)
    _client_credentials(server, application_name, service_client)
    assert_logged_terminations(server, 4)

    for _ in range(2):
        tokens = ok(server.post("/api/token", password_credentials))
        terminate_backend_when(application_name, "state = 'idle'")
        refreshed = server.post("/api/token/refresh", {"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
    assert_logged_terminations(server, 4)
