"""The API-key commands, run as a user runs them: ``manage.py`` in child processes of the
example project on an SQLite file of their own, and the keys they print used against that
project's development server with PyJWT as the client."""

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.fernet import Fernet

from tests.keys import FERNET_KEY_OLD
from tests.shapes import KEYCLOAK_KEYS
from tests.test_commands import REPO_ROOT, Project, assert_one_line_error

CLOSE = {"Connection": "close"}
STARTUP_TIMEOUT = 20.0
DEFAULT_SCOPE = "openid email app_metadata user_metadata profile"
WARNING = "Store the secret now: it is not shown again."
API_KEY_COLUMNS = (
    "key_id",
    "name",
    "scope",
    "encrypted_secret",
    "encrypted_previous_secret",
    "previous_secret_expires_at",
    "expires_at",
    "revoked_at",
)
CREDENTIALS_REFUSED = {"error": "invalid_credentials", "message": "Missing or invalid credentials"}

SEED = """
import json
from django.contrib.auth import get_user_model
from django_tokens import api_keys
user = get_user_model().objects.create_user("alice", "alice@example.com", "alice-password")
issued = api_keys.issue(user, name="seeded")
print(json.dumps({"key_id": issued.api_key.key_id, "secret": issued.secret}))
"""


@dataclass(frozen=True)
class Seeded:
    database: Path
    key_id: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Seeded:
    """A migrated database with the user ``alice`` and one key of hers."""
    project = Project(tmp_path_factory.mktemp("seeded"))
    migrated = project.run("migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    created = project.run("shell", "--verbosity", "0", "-c", SEED)
    assert created.returncode == 0, created.stderr
    return Seeded(project.database, json.loads(created.stdout)["key_id"])


@pytest.fixture
def project(tmp_path, seeded) -> Project:
    project = Project(tmp_path)
    shutil.copyfile(seeded.database, project.database)
    return project


def api_key_row(project: Project, key_id: str) -> dict:
    columns = ", ".join(API_KEY_COLUMNS)
    with closing(sqlite3.connect(project.database)) as db:
        rows = db.execute(
            f"SELECT {columns} FROM django_tokens_apikey WHERE key_id = ?", (key_id,)
        ).fetchall()
    assert len(rows) == 1, rows
    return dict(zip(API_KEY_COLUMNS, rows[0], strict=True))


def stored_anywhere(project: Project, secret: str) -> bool:
    """Whether ``secret`` appears in the clear in any column of any stored key."""
    rows = project.query("SELECT * FROM django_tokens_apikey")
    return any(secret in str(cell) for row in rows for cell in row)


def decrypt(ciphertext: str) -> str:
    return Fernet(FERNET_KEY_OLD.encode()).decrypt(ciphertext.encode()).decode()


def close_to(moment: datetime, expected: datetime, tolerance: timedelta) -> bool:
    return abs(moment - expected) <= tolerance


# -- the development server ----------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def exchange(self, assertion: str) -> requests.Response:
        headers = {**CLOSE, "Authorization": f"Bearer {assertion}"}
        return requests.post(f"{self.url}/auth/api-key", headers=headers, timeout=10)

    def refresh(self, refresh_token: str) -> requests.Response:
        body = {"refresh_token": refresh_token}
        return requests.post(f"{self.url}/auth/refresh", json=body, headers=CLOSE, timeout=10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(project: Project, tmp_path: Path) -> Iterator[Server]:
    """``manage.py runserver`` on the project's database, stopped when the test ends."""
    port = _free_port()
    log = tmp_path / "runserver.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=REPO_ROOT,
            env=project.env((FERNET_KEY_OLD,)),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    started = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_answering(started)
        yield started
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    assert "Traceback" not in log.read_text(errors="replace"), started.log_tail()


def _wait_until_answering(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"runserver exited at start:\n{server.log_tail()}")
        try:
            response = requests.post(f"{server.url}/auth/api-key", headers=CLOSE, timeout=5)
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
            continue
        assert response.status_code == 401, server.log_tail()
        return
    pytest.fail(f"runserver did not answer in time:\n{server.log_tail()}")


def assertion(key_id: str, secret: str) -> str:
    """What a client sends: a short-lived HS256 JWT signed with the key's shared secret."""
    issued_at = int(time.time())
    claims = {"iat": issued_at, "exp": issued_at + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id})


def assert_accepted(server: Server, key_id: str, secret: str, scope: str) -> dict:
    response = server.exchange(assertion(key_id, secret))
    assert response.status_code == 200, (response.text, server.log_tail())
    body = response.json()
    assert set(body) == KEYCLOAK_KEYS
    assert (body["token_type"], body["scope"]) == ("bearer", scope)
    return body


def assert_refused(server: Server, key_id: str, secret: str) -> None:
    response = server.exchange(assertion(key_id, secret))
    assert response.status_code == 401, response.text
    assert response.json() == CREDENTIALS_REFUSED


# -- --help --------------------------------------------------------------------------------


HELP = {
    "create_api_key": ["--user", "--name", "--scopes", "--expires-in", "DAYS", "--json"],
    "rotate_api_key_secret": ["key_id", "--grace", "SECONDS", "--json"],
    "revoke_api_key": ["key_id", "--json"],
}


def test_help_of_each_api_key_command(project):
    results = project.run_concurrently(*([command, "--help"] for command in HELP))
    for (command, options), completed in zip(HELP.items(), results, strict=True):
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.startswith(f"usage: manage.py {command}")
        for option in options:
            assert option in completed.stdout, (command, option)
        assert completed.stderr == ""


# -- bad input -----------------------------------------------------------------------------


def test_bad_input_exits_with_a_one_line_error_and_changes_nothing(project, seeded):
    before = api_key_row(project, seeded.key_id)
    create = ["create_api_key", "--user", "alice", "--name", "ci-bot"]
    cases = {
        "Unknown user: 'nobody'.": ["create_api_key", "--user", "nobody", "--name", "ci-bot"],
        "--expires-in must be a positive number of days.": [*create, "--expires-in", "0"],
        "--scopes must name at least one scope.": [*create, "--scopes", ""],
        "--name must be 1 to 100 characters.": ["create_api_key", "--user", "alice", "--name", ""],
        "Unknown API key: 'dtk_nope'.": ["rotate_api_key_secret", "dtk_nope", "--json"],
        "--grace must be zero or a positive number of seconds.": [
            "rotate_api_key_secret",
            seeded.key_id,
            "--grace",
            "-1",
        ],
        "--grace is too large.": ["rotate_api_key_secret", seeded.key_id, "--grace", "9" * 20],
        "--expires-in is too large.": [*create, "--expires-in", "9999999"],
        "Unknown API key: 'dtk_gone'.": ["revoke_api_key", "dtk_gone", "--json"],
    }

    results = project.run_concurrently(*cases.values())

    for message, completed in zip(cases, results, strict=True):
        assert_one_line_error(completed, f"CommandError: {message}")
        assert completed.stderr.startswith("CommandError: "), completed.stderr
        assert completed.stdout == ""
    assert project.query("SELECT COUNT(*) FROM django_tokens_apikey") == [(1,)]
    assert api_key_row(project, seeded.key_id) == before


# -- human output --------------------------------------------------------------------------


def test_human_output_shows_each_secret_once_with_the_warning(project, seeded):
    created = project.run("create_api_key", "--user", "alice", "--name", "laptop")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    key_id = re.fullmatch(r"Key id:\s+(dtk_\S+)", lines[0])[1]
    secret = re.fullmatch(r"Secret:\s+(\S+)", lines[1])[1]
    assert created.stdout.count(secret) == 1
    assert re.fullmatch(r"Scopes:\s+" + DEFAULT_SCOPE, lines[2])
    assert re.fullmatch(r"Expires:\s+never", lines[3])
    assert lines[-1] == WARNING
    assert created.stderr == ""
    assert not stored_anywhere(project, secret)
    assert decrypt(api_key_row(project, key_id)["encrypted_secret"]) == secret

    with_grace, without_grace = project.run_concurrently(
        ["rotate_api_key_secret", key_id, "--grace", "60"],
        ["rotate_api_key_secret", seeded.key_id],
    )
    # After the rotations: a revoked key's secret can no longer be rotated.
    revoked = project.run("revoke_api_key", seeded.key_id)
    rotated_after_revocation = project.run("rotate_api_key_secret", seeded.key_id)

    for rotated in (with_grace, without_grace):
        assert rotated.returncode == 0, rotated.stderr
        lines = rotated.stdout.splitlines()
        new_secret = re.fullmatch(r"Secret:\s+(\S+)", lines[1])[1]
        assert rotated.stdout.count(new_secret) == 1
        assert lines[-1] == WARNING
        assert not stored_anywhere(project, new_secret)
    assert re.fullmatch(r"Key id:\s+" + key_id, with_grace.stdout.splitlines()[0])
    until = re.fullmatch(r"The old secret works until (\S+)\.", with_grace.stdout.splitlines()[2])
    expected_until = datetime.now(UTC) + timedelta(seconds=60)
    assert close_to(datetime.fromisoformat(until[1]), expected_until, timedelta(seconds=30))
    assert without_grace.stdout.splitlines()[2] == "The old secret no longer works."
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == f"Revoked {seeded.key_id} and 0 session(s) opened with it.\n"
    assert rotated_after_revocation.returncode != 0
    assert rotated_after_revocation.stdout == ""
    assert rotated_after_revocation.stderr == (
        f"CommandError: API key '{seeded.key_id}' is revoked or expired; issue a new key.\n"
    )


# -- a key's life against the running server -----------------------------------------------


def test_issued_rotated_and_revoked_keys_work_then_stop_against_the_server(project, server):
    created = project.run_json(
        "create_api_key",
        "--user",
        "alice",
        "--name",
        "ci-bot",
        "--scopes",
        "openid email",
        "--expires-in",
        "90",
    )
    key_id, first = created["key_id"], created["secret"]
    assert key_id.startswith("dtk_")
    assert created["scope"] == "openid email"
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert close_to(expires_at, datetime.now(UTC) + timedelta(days=90), timedelta(minutes=1))
    assert not stored_anywhere(project, first)

    tokens = assert_accepted(server, key_id, first, "openid email")
    again = assert_accepted(server, key_id, first, "openid email")
    assert again["session_state"] != tokens["session_state"]

    rotated = project.run_json("rotate_api_key_secret", key_id, "--grace", "3600")
    assert rotated["key_id"] == key_id
    second = rotated["secret"]
    assert second != first
    until = datetime.fromisoformat(rotated["previous_secret_valid_until"])
    assert close_to(until, datetime.now(UTC) + timedelta(hours=1), timedelta(minutes=1))
    assert_accepted(server, key_id, first, "openid email")
    assert_accepted(server, key_id, second, "openid email")

    replaced = project.run_json("rotate_api_key_secret", key_id)
    third = replaced["secret"]
    assert replaced["previous_secret_valid_until"] is None
    assert_refused(server, key_id, first)
    assert_refused(server, key_id, second)
    assert_accepted(server, key_id, third, "openid email")
    before_revocation = server.refresh(tokens["refresh_token"])
    assert before_revocation.status_code == 200, before_revocation.text
    tokens = before_revocation.json()

    revoked = project.run_json("revoke_api_key", key_id)

    assert revoked == {"key_id": key_id, "sessions_revoked": 5}
    assert_refused(server, key_id, third)
    refreshed = server.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 401, refreshed.text
    assert api_key_row(project, key_id)["revoked_at"] is not None
