"""The management commands, run as a user runs them: ``manage.py`` in a child process of the
example project, against an SQLite file of its own (so no test here uses the test database)."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.keys import FERNET_KEY_FOREIGN, FERNET_KEY_NEW, FERNET_KEY_OLD

REPO_ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = ("RS256", "RS512", "ES256", "EdDSA")


class Project:
    """The example project on one SQLite file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.database = directory / "db.sqlite3"

    def env(self, encryption_keys: tuple[str, ...]) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("REDIS_URL", "DJANGO_TOKENS_TEST_CACHE_PREFIX")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="example_project.settings",
            DATABASE_URL=f"sqlite:///{self.database}",
            EXAMPLE_VAR_DIR=str(self.directory),
            TOKENS_ENCRYPTION_KEYS=",".join(encryption_keys),
            LOG_LEVEL="WARNING",
        )
        return env

    def run(
        self, *args: str, encryption_keys: tuple[str, ...] = (FERNET_KEY_OLD,)
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env(encryption_keys),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def run_concurrently(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run read-only commands side by side (each start-up costs about a second)."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            return list(pool.map(lambda args: self.run(*args), commands))

    def query(self, sql: str) -> list[tuple]:
        with closing(sqlite3.connect(self.database)) as db:
            return db.execute(sql).fetchall()

    def run_json(self, *args: str, **kwargs) -> dict:
        completed = self.run(*args, "--json", **kwargs)
        assert completed.returncode == 0, completed.stderr
        assert "Traceback" not in completed.stderr
        return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory) -> Path:
    project = Project(tmp_path_factory.mktemp("migrated"))
    completed = project.run("migrate", "--verbosity", "0")
    assert completed.returncode == 0, completed.stderr
    return project.database


@pytest.fixture
def project(tmp_path, migrated_database) -> Project:
    project = Project(tmp_path)
    shutil.copyfile(migrated_database, project.database)
    return project


def assert_one_line_error(completed: subprocess.CompletedProcess[str], expected: str) -> None:
    """Non-zero exit, no traceback, and a single error line (after argparse's usage synopsis,
    when argparse refused the arguments)."""
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    synopsis, error = lines[:-1], lines[-1]
    assert expected in error
    if synopsis:
        assert synopsis[0].startswith("usage: manage.py ")
        assert all(line.startswith(" ") for line in synopsis[1:])


# -- --help --------------------------------------------------------------------------------


HELP = {
    "rotate_signing_key": ["--algorithm", "--json", *ALGORITHMS],
    "purge_tokens": ["--batch-size", "--json"],
    "reencrypt_secrets": ["--json"],
}


def test_help_of_each_command(project):
    results = project.run_concurrently(*([command, "--help"] for command in HELP))
    for (command, options), completed in zip(HELP.items(), results, strict=True):
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.startswith(f"usage: manage.py {command}")
        for option in options:
            assert option in completed.stdout
        assert completed.stderr == ""


# -- bad input -----------------------------------------------------------------------------


def test_bad_arguments_exit_with_a_one_line_error(project):
    unknown_algorithm, zero_batch = project.run_concurrently(
        ["rotate_signing_key", "--algorithm", "XYZ", "--json"],
        ["purge_tokens", "--batch-size", "0", "--json"],
    )
    assert_one_line_error(unknown_algorithm, "argument --algorithm: invalid choice: 'XYZ'")
    assert_one_line_error(zero_batch, "CommandError: --batch-size must be a positive number.")
    assert unknown_algorithm.stdout == zero_batch.stdout == ""


# -- rotate_signing_key --------------------------------------------------------------------


def test_rotate_signing_key_creates_rotates_and_changes_algorithm(project):
    first = project.run_json("rotate_signing_key")
    assert first["retiring"] is None
    assert first["active"]["algorithm"] == first["next"]["algorithm"] == "RS256"
    assert first["active"]["kid"] != first["next"]["kid"]

    second = project.run_json("rotate_signing_key")
    assert second["active"] == first["next"]
    assert second["retiring"]["kid"] == first["active"]["kid"]
    assert datetime.fromisoformat(second["retiring"]["published_until"]).tzinfo is not None
    assert second["next"]["kid"] not in (first["active"]["kid"], first["next"]["kid"])
    assert second["retired"] == 0

    third = project.run_json("rotate_signing_key", "--algorithm", "ES256")
    assert third["active"]["algorithm"] == third["next"]["algorithm"] == "ES256"
    assert third["active"]["kid"] != second["next"]["kid"]
    assert third["retiring"]["kid"] == second["active"]["kid"]


# -- purge_tokens --------------------------------------------------------------------------


SEED_EXPIRED_SESSIONS = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tokens import sessions
user = get_user_model().objects.create_user("carol", password="carol-password")
for _ in range(3):
    sessions.start(user, service="password", now=timezone.now() - timedelta(days=40))
sessions.start(user, service="password")
"""


def test_purge_tokens_reports_counts_as_json(project):
    seeded = project.run("shell", "-c", SEED_EXPIRED_SESSIONS)
    assert seeded.returncode == 0, seeded.stderr

    counts = project.run_json("purge_tokens", "--batch-size", "2")

    assert counts == {
        "refresh tokens": 3,
        "sessions": 3,
        "audit events": 0,
        "oauth2 rows": 0,
        "signing keys retired": 0,
    }
    assert project.query("SELECT COUNT(*) FROM django_tokens_session") == [(1,)]
    assert project.query("SELECT COUNT(*) FROM django_tokens_refreshtoken") == [(1,)]


# -- reencrypt_secrets ---------------------------------------------------------------------


def test_reencrypt_secrets_moves_keys_under_the_newest_key(project):
    project.run_json("rotate_signing_key")
    rotated_keys = (FERNET_KEY_NEW, FERNET_KEY_OLD)

    first = project.run_json("reencrypt_secrets", encryption_keys=rotated_keys)
    assert first == {"reencrypted": 2, "already_current": 0, "failed": []}

    again = project.run_json("reencrypt_secrets", encryption_keys=rotated_keys)
    assert again == {"reencrypted": 0, "already_current": 2, "failed": []}

    newest = Fernet(FERNET_KEY_NEW.encode())
    for (ciphertext,) in project.query(
        "SELECT encrypted_private_key FROM django_tokens_signingkey"
    ):
        assert newest.decrypt(ciphertext.encode()).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_reencrypt_secrets_fails_on_undecryptable_rows(project):
    foreign = Fernet(FERNET_KEY_FOREIGN.encode()).encrypt(b"not a key of ours").decode()
    with closing(sqlite3.connect(project.database)) as db, db:
        db.execute(
            "INSERT INTO django_tokens_signingkey (kid, algorithm, state, encrypted_private_key,"
            " public_jwk, created_at) VALUES ('foreign', 'RS256', 'retired', ?, '{}', ?)",
            (foreign, datetime.now(UTC).isoformat()),
        )
        (pk,) = db.execute(
            "SELECT id FROM django_tokens_signingkey WHERE kid = 'foreign'"
        ).fetchone()

    completed = project.run("reencrypt_secrets", "--json")

    assert_one_line_error(completed, "1 secret(s) could not be decrypted with any configured key")
    assert completed.stderr.startswith("CommandError: ")
    assert json.loads(completed.stdout) == {
        "reencrypted": 0,
        "already_current": 0,
        "failed": [f"django_tokens.SigningKey:{pk}"],
    }
    assert project.query("SELECT encrypted_private_key FROM django_tokens_signingkey") == [
        (foreign,)
    ]
