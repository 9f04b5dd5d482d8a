"""Two gunicorn processes on one PostgreSQL database and one Redis: failures one process counts,
sessions revoked elsewhere and refresh tokens rotated by the other are honoured by each."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.db import connection

from django_tokens import sessions
from django_tokens.conf import token_settings
from django_tokens.crypto import digest
from django_tokens.models import RefreshToken, Session

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOSE = {"Connection": "close"}
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, headers=CLOSE, timeout=10)

    def me(self, access_token: str) -> requests.Response:
        headers = {**CLOSE, "Authorization": f"Bearer {access_token}"}
        return requests.get(f"{self.url}/api/me", headers=headers, timeout=10)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _test_database_url() -> str:
    """The URL of the database this test run uses (pytest-django's test database)."""
    settings = connection.settings_dict
    credentials = quote(settings["USER"] or "", safe="")
    if settings["PASSWORD"]:
        credentials += ":" + quote(settings["PASSWORD"], safe="")
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{quote(settings['NAME'], safe='')}"


def _start(name: str, log_dir: Path) -> Server:
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
    }
    log = log_dir / f"{name}.log"
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
                "--graceful-timeout",
                "5",
                "--no-control-socket",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Server(name, f"http://127.0.0.1:{port}", process, log)


def _wait_until_answering(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server {server.name} exited at start:\n{server.log_tail()}")
        try:
            response = requests.get(f"{server.url}/api/me", headers=CLOSE, timeout=5)
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
            continue
        assert response.status_code == 401, server.log_tail()
        return
    pytest.fail(f"server {server.name} did not answer in time:\n{server.log_tail()}")


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=STOP_TIMEOUT)


def two_servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Servers A and B, each one gunicorn process, on this test's database and cache;
    stopped afterwards, and neither may have logged a traceback. Used by ``servers``
    fixtures, here and in other modules."""
    started: list[Server] = []
    try:
        for name in ("a", "b"):
            started.append(_start(name, tmp_path))
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for server in started:
            _wait_until_answering(server, deadline)
        yield started[0], started[1]
    finally:
        for server in started:
            _stop(server)
    for server in started:
        assert "Traceback" not in server.log.read_text(errors="replace"), server.log_tail()


@pytest.fixture
def servers(transactional_db: None, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    yield from two_servers(tmp_path)


def obtain(server: Server, credentials: dict[str, str]) -> dict[str, Any]:
    response = server.post("/api/token", credentials)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(server: Server, refresh_token: str) -> dict[str, Any]:
    response = server.post("/api/token/refresh", {"refresh_token": refresh_token})
    assert response.status_code == 200, f"{server.name}: {response.text}"
    return response.json()


def _away_from_a_throttle_window_edge(margin: float = 5.0) -> None:
    """Failures are counted in fixed windows; start the count well inside one."""
    window = token_settings.THROTTLE_WINDOW
    remaining = window - time.time() % window
    if remaining < margin:
        time.sleep(remaining + 0.1)


def test_failed_logins_are_counted_across_processes(
    servers: tuple[Server, Server], user: Any, password_credentials: dict[str, str]
) -> None:
    a, b = servers
    limit = token_settings.THROTTLE_FAILURES_PER_USERNAME
    wrong = {"username": "alice", "password": "not-her-password"}
    _away_from_a_throttle_window_edge()

    for attempt in range(limit):
        server = (a, b)[attempt % 2]
        response = server.post("/api/token", wrong)
        assert response.status_code == 401, f"attempt {attempt + 1} on {server.name}"

    for server in (b, a):
        refused = server.post("/api/token", wrong)
        assert refused.status_code == 429, f"{server.name}: {refused.text}"
        assert refused.json()["error"] == "too_many_attempts"
        assert int(refused.headers["Retry-After"]) >= 1
    assert a.post("/api/token", password_credentials).status_code == 429


def test_revocation_is_honoured_at_once_by_every_process(
    servers: tuple[Server, Server], user: Any, password_credentials: dict[str, str]
) -> None:
    a, b = servers
    revoked = obtain(a, password_credentials)
    kept = obtain(b, password_credentials)
    seen_by_b = b.me(revoked["access_token"])
    assert seen_by_b.status_code == 200, seen_by_b.text
    # Each process has now read the session's mark absent, and keeps that answer while its
    # revocation feed is live.
    assert a.me(revoked["access_token"]).status_code == 200

    assert sessions.revoke_session(seen_by_b.json()["session"])

    assert b.me(revoked["access_token"]).status_code == 401
    assert a.me(revoked["access_token"]).status_code == 401
    refused = b.post("/api/token/refresh", {"refresh_token": revoked["refresh_token"]})
    assert refused.status_code == 401
    assert a.me(kept["access_token"]).status_code == 200
    assert b.me(kept["access_token"]).status_code == 200


def test_refresh_tokens_rotate_across_processes(
    servers: tuple[Server, Server], user: Any, password_credentials: dict[str, str]
) -> None:
    a, b = servers
    first = obtain(a, password_credentials)

    second = refresh(a, first["refresh_token"])
    third = refresh(b, second["refresh_token"])
    fourth = refresh(a, third["refresh_token"])

    session_ids = {
        server.me(tokens["access_token"]).json()["session"]
        for server, tokens in ((b, first), (b, second), (a, third), (b, fourth))
    }
    assert len(session_ids) == 1
    session = Session.objects.get(user=user)
    assert str(session.pk) in session_ids
    assert session.revoked_at is None
    live = RefreshToken.objects.get(session=session, used_at__isnull=True)
    assert live.token_hash == digest(fourth["refresh_token"])
    assert RefreshToken.objects.filter(session=session).count() == 4
