"""The management commands, run as a user runs them: ``manage.py`` in a child process of the
example project, against an SQLite file of its own (so no test here uses the test database)."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

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

    def start(
        self, *args: str, encryption_keys: tuple[str, ...] = (FERNET_KEY_OLD,)
    ) -> subprocess.Popen[str]:
        """:meth:`run` in the background: stdout is a pipe to read as it goes, stderr a file
        (``stderr.log`` in the project's directory)."""
        with (self.directory / "stderr.log").open("w") as stderr:
            return subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=REPO_ROOT,
                env=self.env(encryption_keys),
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
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

    def shell(self, code: str, **kwargs) -> str:
        """``manage.py shell -c code``; returns what it printed."""
        completed = self.run("shell", "--verbosity", "0", "-c", code, **kwargs)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    def add_user(self, username: str) -> None:
        """A user with an unusable password, straight into the table (no child process)."""
        with closing(sqlite3.connect(self.database)) as db, db:
            db.execute(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
                " email, is_staff, is_active, date_joined) VALUES ('!', 0, ?, '', '', '', 0, 1, ?)",
                (username, sqlite_datetime(datetime.now(UTC))),
            )


def sqlite_datetime(moment: datetime) -> str:
    """How Django stores an aware datetime in SQLite: naive UTC, with microseconds."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


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
    "retire_signing_key": ["kid", "--force", "--json"],
    "purge_tokens": ["--batch-size", "--audit-older-than", "DAYS", "--json"],
    "reencrypt_secrets": ["--json"],
}
#: What the help says of an option, with argparse's line wrapping undone.
EXPLAINED = {
    "retire_signing_key": [
        "--force Retire it even though valid tokens need it: their access tokens are refused",
        "--json Print the result as JSON.",
    ],
    "purge_tokens": [
        "--audit-older-than DAYS Delete audit entries older than this many days",
        "0 keeps every entry",
    ],
}


def test_help_of_each_command(project):
    results = project.run_concurrently(*([command, "--help"] for command in HELP))
    for (command, options), completed in zip(HELP.items(), results, strict=True):
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.startswith(f"usage: manage.py {command}")
        for option in options:
            assert option in completed.stdout
        unwrapped = " ".join(completed.stdout.split())
        for explanation in EXPLAINED.get(command, []):
            assert explanation in unwrapped, (command, explanation)
        assert completed.stderr == ""


# -- bad input -----------------------------------------------------------------------------


def test_bad_arguments_exit_with_a_one_line_error(project):
    """What test_api_key_commands does not cover already: argparse's refusals of each
    command, and the checks of the maintenance commands."""
    project.add_user("alice")
    create = ["create_api_key", "--user", "alice", "--name", "ci-bot"]
    cases = {
        "argument --algorithm: invalid choice: 'HS256'": [
            "rotate_signing_key",
            "--algorithm",
            "HS256",
            "--json",
        ],
        "the following arguments are required: kid": ["retire_signing_key", "--force"],
        "CommandError: --batch-size must be a positive number.": [
            "purge_tokens",
            "--batch-size",
            "0",
            "--json",
        ],
        "CommandError: --audit-older-than must be zero or a positive number of days.": [
            "purge_tokens",
            "--audit-older-than",
            "-1",
            "--json",
        ],
        "CommandError: --audit-older-than is too large.": [
            "purge_tokens",
            "--audit-older-than",
            "9" * 12,
        ],
        "unrecognized arguments: --all": ["reencrypt_secrets", "--all"],
        "argument --expires-in: invalid int value: 'abc'": [*create, "--expires-in", "abc"],
        "CommandError: --name must be 1 to 100 characters.": [
            "create_api_key",
            "--user",
            "alice",
            "--name",
            "x" * 101,
        ],
        "the following arguments are required: key_id": ["revoke_api_key", "--json"],
    }

    results = project.run_concurrently(*cases.values())

    for message, completed in zip(cases, results, strict=True):
        assert_one_line_error(completed, message)
        assert completed.stdout == "", message
    for table in ("apikey", "signingkey", "auditevent", "session"):
        assert project.query(f"SELECT COUNT(*) FROM django_tokens_{table}") == [(0,)], table


def test_purge_tokens_refuses_a_retention_reaching_before_the_calendar(project):
    completed = project.run("purge_tokens", "--audit-older-than", "999999999")
    assert_one_line_error(completed, "CommandError: --audit-older-than is too large.")


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


# -- retire_signing_key --------------------------------------------------------------------


PRINT_PUBLISHED_KIDS = """
import json
from django_tokens import keystore
print(json.dumps([key["kid"] for key in keystore.jwks()["keys"]]))
"""


#: Two rotations, with the code put in for %s run between them; prints the kids of the keys.
ROTATE_TWICE = """
import json
from django_tokens import keystore
keystore.rotate()
%s
rotation = keystore.rotate()
kids = {"active": rotation.active, "next": rotation.next, "retiring": rotation.retiring}
print(json.dumps({state: key.kid for state, key in kids.items()}))
"""


def published_kids(completed: subprocess.CompletedProcess[str]) -> set[str]:
    """The kids of the JWKS, as printed by ``shell -c PRINT_PUBLISHED_KIDS``."""
    assert completed.returncode == 0, completed.stderr
    return set(json.loads(completed.stdout))


def retire(*options: str, kid: str) -> list[str]:
    """retire_signing_key's arguments. A kid is base64url, so it may begin with "-": it
    comes after "--" (see test_retire_signing_key_takes_a_kid_beginning_with_a_dash)."""
    return ["retire_signing_key", *options, "--", kid]


def retire_json(project: Project, *options: str, kid: str) -> dict:
    completed = project.run(*retire(*options, "--json", kid=kid))
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    return json.loads(completed.stdout)


def signing_keys(project: Project) -> dict[str, tuple]:
    rows = project.query("SELECT kid, state, retired_at FROM django_tokens_signingkey")
    return {kid: (state, retired_at) for kid, state, retired_at in rows}


def audit_rows(project: Project, action: str) -> list[tuple[str, str, dict]]:
    """(actor, signing kid, detail) of each entry of ``action``, oldest first."""
    rows = project.query(
        "SELECT actor, signing_kid, detail FROM django_tokens_auditevent"
        f" WHERE action = '{action}' ORDER BY id"
    )
    return [(actor, kid, json.loads(detail)) for actor, kid, detail in rows]


def test_retire_signing_key_retires_an_unneeded_key_and_refuses_the_others(project):
    kids = json.loads(project.shell(ROTATE_TWICE % ""))
    active, following, retiring = kids["active"], kids["next"], kids["retiring"]
    before = signing_keys(project)

    published, unknown, of_active, of_next = project.run_concurrently(
        ["shell", "--verbosity", "0", "-c", PRINT_PUBLISHED_KIDS],
        retire("--json", kid="no-such-kid"),
        retire(kid=active),
        retire("--force", "--json", kid=following),
    )

    assert published_kids(published) == {active, following, retiring}
    assert_one_line_error(unknown, "CommandError: Unknown signing key: 'no-such-kid'.")
    assert_one_line_error(
        of_active,
        f"CommandError: Signing key {active} is the active key: rotate the keys first,",
    )
    assert_one_line_error(
        of_next, f"CommandError: Signing key {following} is the next key: rotate the keys first,"
    )
    assert unknown.stdout == of_active.stdout == of_next.stdout == ""
    assert signing_keys(project) == before
    assert audit_rows(project, "signing_key_retired") == []

    retired = retire_json(project, kid=retiring)

    assert retired == {
        "kid": retiring,
        "state": "retired",
        "sessions_affected": 0,
        "oauth2_tokens_affected": 0,
    }
    after = signing_keys(project)
    assert after.pop(retiring)[0] == "retired"
    assert after == {kid: row for kid, row in before.items() if kid != retiring}
    ((actor, kid, detail),) = audit_rows(project, "signing_key_retired")
    assert (actor, kid, detail["forced"]) == ("manage.py retire_signing_key", retiring, False)
    retired_rows = project.query("SELECT retired_at FROM django_tokens_signingkey")

    published, again = project.run_concurrently(
        ["shell", "--verbosity", "0", "-c", PRINT_PUBLISHED_KIDS],
        retire("--force", kid=retiring),
    )

    assert published_kids(published) == {active, following}
    assert_one_line_error(again, f"CommandError: Signing key {retiring} is retired already.")
    assert again.stdout == ""
    assert project.query("SELECT retired_at FROM django_tokens_signingkey") == retired_rows
    assert len(audit_rows(project, "signing_key_retired")) == 1


#: A live and a revoked session, opened while the first active key signs.
SEED_SESSIONS = """
from django.contrib.auth import get_user_model
from django_tokens import sessions
user = get_user_model().objects.create_user("carol")
live = sessions.start(user, service="password")
revoked = sessions.start(user, service="password")
sessions.revoke_session(revoked.session.pk)
"""


def test_retire_signing_key_refuses_a_key_still_needed_unless_forced(project):
    kid = json.loads(project.shell(ROTATE_TWICE % SEED_SESSIONS))["retiring"]
    before = signing_keys(project)

    refused = project.run(*retire(kid=kid))

    assert_one_line_error(
        refused,
        f"CommandError: Signing key {kid} is still needed: 1 session(s) and 0 OAuth 2.0 "
        "token(s) hold tokens it signed, valid until ",
    )
    assert refused.stderr.rstrip().endswith("Run again with --force to retire it anyway.")
    assert refused.stdout == ""
    assert signing_keys(project) == before
    assert audit_rows(project, "signing_key_retired") == []

    forced = retire_json(project, "--force", kid=kid)

    assert forced == {
        "kid": kid,
        "state": "retired",
        "sessions_affected": 1,
        "oauth2_tokens_affected": 0,
    }
    assert signing_keys(project)[kid][0] == "retired"
    ((actor, _kid, detail),) = audit_rows(project, "signing_key_retired")
    assert actor == "manage.py retire_signing_key"
    assert (detail["forced"], detail["sessions"]) == (True, 1)


FIRST_TOKENS = """
import jwt
from django.contrib.auth import get_user_model
from django.test import Client
from django_tokens import keystore
get_user_model().objects.create_user("carol", password="carol-password")
response = Client(SERVER_NAME="localhost").post(
    "/api/token",
    {"username": "carol", "password": "carol-password"},
    content_type="application/json",
)
assert response.status_code == 200, response.content
kid = jwt.get_unverified_header(response.json()["access_token"])["kid"]
assert keystore.rotate().retiring.kid == kid
print(kid)
"""


def test_retire_signing_key_counts_the_tokens_of_the_request_that_created_the_keys(project):
    """The first token request creates the keys; its tokens still count against the key."""
    kid = project.shell(FIRST_TOKENS).strip()  # the first request creates the keys

    refused = project.run(*retire(kid=kid))

    assert_one_line_error(refused, f"Signing key {kid} is still needed: 1 session(s)")


#: A thumbprint kid (43 base64url characters) that begins with "-", as one in 64 does.
DASHED_KID = "-" + "Ab9_" * 10 + "xy"


def test_retire_signing_key_takes_a_kid_beginning_with_a_dash(project):
    day_ago = sqlite_datetime(datetime.now(UTC) - timedelta(days=1))
    with closing(sqlite3.connect(project.database)) as db, db:
        db.execute(
            "INSERT INTO django_tokens_signingkey (kid, algorithm, state, encrypted_private_key,"
            " public_jwk, created_at, activated_at, retiring_at, retire_after)"
            " VALUES (?, 'RS256', 'retiring', '', '{}', ?, ?, ?, ?)",
            (
                DASHED_KID,
                day_ago,
                day_ago,
                day_ago,
                sqlite_datetime(datetime.now(UTC) + timedelta(hours=1)),
            ),
        )

    completed = project.run("retire_signing_key", DASHED_KID, "--json")

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["state"] == "retired"


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


PURGE_STEPS = ["refresh tokens", "sessions", "audit events", "oauth2 rows", "signing keys retired"]


def purge_lines(completed: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """purge_tokens' human output: one ``label: count`` line per step, in order."""
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    counts = {}
    for line in completed.stdout.splitlines():
        label, count = line.split(": ")
        counts[label] = int(count)
    assert list(counts) == [step for step in PURGE_STEPS if step in counts]
    return counts


def test_purge_tokens_deletes_audit_entries_older_than_the_retention(project):
    now = datetime.now(UTC)
    ages = {
        "a year": timedelta(days=400),
        "100 days": timedelta(days=100),
        "30 days and an hour": timedelta(days=30, hours=1),
        "30 days less an hour": timedelta(days=30, hours=-1),
        "a day": timedelta(days=1),
    }
    with closing(sqlite3.connect(project.database)) as db, db:
        db.executemany(
            "INSERT INTO django_tokens_auditevent (created_at, action, actor, service,"
            " user_id_value, username, api_key_id, client_id, signing_kid, detail)"
            " VALUES (?, 'token_issued', ?, '', '', '', '', '', '', '{}')",
            [(sqlite_datetime(now - age), actor) for actor, age in ages.items()],
        )

    def kept() -> set[str]:
        return {actor for (actor,) in project.query("SELECT actor FROM django_tokens_auditevent")}

    keep_all = purge_lines(project.run("purge_tokens", "--audit-older-than", "0"))
    assert keep_all == dict.fromkeys(PURGE_STEPS, 0)
    assert kept() == set(ages)

    by_default = purge_lines(project.run("purge_tokens"))  # AUDIT_RETENTION: 90 days
    assert by_default == dict.fromkeys(PURGE_STEPS, 0) | {"audit events": 2}
    assert kept() == {"30 days and an hour", "30 days less an hour", "a day"}

    counts = project.run_json("purge_tokens", "--audit-older-than", "30")
    assert counts == dict.fromkeys(PURGE_STEPS, 0) | {"audit events": 1}
    assert kept() == {"30 days less an hour", "a day"}


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


# -- the audit trail -----------------------------------------------------------------------


def test_each_command_is_the_actor_of_its_changes_and_no_secret_is_recorded(project):
    project.add_user("dave")
    created = project.run_json("create_api_key", "--user", "dave", "--name", "ci-bot")
    key_id = created["key_id"]
    rotated = project.run_json("rotate_api_key_secret", key_id, "--grace", "60")
    revoked, rotation = project.run_concurrently(
        ["revoke_api_key", key_id], ["rotate_signing_key", "--json"]
    )
    assert revoked.returncode == rotation.returncode == 0, revoked.stderr + rotation.stderr
    active = json.loads(rotation.stdout)["active"]["kid"]

    rows = project.query(
        "SELECT action, actor, username, api_key_id, signing_kid FROM django_tokens_auditevent"
    )

    assert sorted(rows) == [
        ("api_key_issued", "manage.py create_api_key", "dave", key_id, ""),
        ("api_key_revoked", "manage.py revoke_api_key", "dave", key_id, ""),
        ("api_key_secret_rotated", "manage.py rotate_api_key_secret", "dave", key_id, ""),
        ("signing_key_rotated", "manage.py rotate_signing_key", "", "", active),
    ]
    secrets = (created["secret"], rotated["secret"])
    assert secrets[0] != secrets[1]
    cells = [
        str(cell) for row in project.query("SELECT * FROM django_tokens_auditevent") for cell in row
    ]
    assert not [cell for cell in cells for secret in secrets if secret in cell]


# -- reencrypt_secrets, killed half-way ----------------------------------------------------


SEED_API_KEYS = """
import json
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.db import transaction
from django_tokens import api_keys, keystore
keystore.rotate()
owner = get_user_model().objects.create_user("erin")
secrets = {}
with transaction.atomic():
    for number in range(%(keys)d):
        issued = api_keys.issue(owner, name=f"key-{number}")
        secrets[issued.api_key.key_id] = [issued.secret]
    for key_id in list(secrets)[:%(rotated)d]:
        secrets[key_id].insert(0, api_keys.rotate_secret(key_id, grace=timedelta(days=1)).secret)
print(json.dumps(secrets))
"""

#: Prints, for each key, the secrets an assertion may be signed with, and exchanges one
#: assertion (signed with the secret %(secret)r of %(key_id)r) for tokens.
USE_API_KEYS = """
import json, time, uuid
import jwt
from django.test import Client
from django.utils import timezone
from django_tokens import api_keys
from django_tokens.models import ApiKey
now = timezone.now()
verifiable = {
    key.key_id: [secret.decode() for secret in api_keys.secrets_for_verification(key, now)]
    for key in ApiKey.objects.all()
}
claims = {"iat": int(time.time()), "exp": int(time.time()) + 60, "jti": uuid.uuid4().hex}
assertion = jwt.encode(claims, %(secret)r, algorithm="HS256", headers={"kid": %(key_id)r})
response = Client(SERVER_NAME="localhost").post(
    "/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion}"
)
body = response.json()
kid = jwt.get_unverified_header(body["access_token"])["kid"] if "access_token" in body else None
print(json.dumps({"verifiable": verifiable, "status": response.status_code, "kid": kid}))
"""

FERNETS = {"new": Fernet(FERNET_KEY_NEW.encode()), "old": Fernet(FERNET_KEY_OLD.encode())}


def stored_ciphertexts(project: Project) -> dict[str, str]:
    """Every ciphertext of the secret box, by the label reencrypt_secrets gives its row."""
    found = {
        f"django_tokens.SigningKey.encrypted_private_key:{pk}": ciphertext
        for pk, ciphertext in project.query(
            "SELECT id, encrypted_private_key FROM django_tokens_signingkey"
        )
    }
    for field in ("encrypted_secret", "encrypted_previous_secret"):
        found.update(
            (f"django_tokens.ApiKey.{field}:{pk}", ciphertext)
            for pk, ciphertext in project.query(f"SELECT id, {field} FROM django_tokens_apikey")
            if ciphertext
        )
    return found


def decrypt_with_one_key(ciphertext: str) -> tuple[str, bytes]:
    """("new" or "old", plaintext): the one encryption key that decrypts ``ciphertext``."""
    opened = {}
    for name, fernet in FERNETS.items():
        try:
            opened[name] = fernet.decrypt(ciphertext.encode())
        except InvalidToken:
            continue
    assert len(opened) == 1, opened.keys()
    return next(iter(opened.items()))


def test_reencrypt_secrets_killed_half_way_leaves_every_secret_readable_and_resumes(project):
    keys, rotated, kill_after = 300, 20, 40
    seeded = json.loads(project.shell(SEED_API_KEYS % {"keys": keys, "rotated": rotated}))
    ids = dict(project.query("SELECT key_id, id FROM django_tokens_apikey"))
    expected = {  # every plaintext, by label, read before anything is re-encrypted
        label: FERNETS["old"].decrypt(ciphertext.encode())
        for label, ciphertext in stored_ciphertexts(project).items()
    }
    assert len(expected) == 2 + keys + rotated
    for key_id, secrets in seeded.items():
        assert (
            expected[f"django_tokens.ApiKey.encrypted_secret:{ids[key_id]}"] == secrets[0].encode()
        )
        if len(secrets) == 2:
            label = f"django_tokens.ApiKey.encrypted_previous_secret:{ids[key_id]}"
            assert expected[label] == secrets[1].encode()
    rotated_keys = (FERNET_KEY_NEW, FERNET_KEY_OLD)

    process = project.start("reencrypt_secrets", "--verbosity", "2", encryption_keys=rotated_keys)
    reported = []
    try:
        for line in process.stdout:
            reported.append(line)
            if len(reported) == kill_after:
                process.send_signal(signal.SIGKILL)
                break
        reported.extend(process.stdout)  # what it printed before the signal landed
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stdout.close()
    stderr = (project.directory / "stderr.log").read_text()
    assert process.returncode == -signal.SIGKILL, (process.returncode, reported, stderr)
    assert stderr == ""
    printed = set()
    for line in reported:
        assert line.startswith("re-encrypted "), line
        printed.add(line.removeprefix("re-encrypted ").rstrip("\n"))

    after_crash = {"new": set(), "old": set()}
    for label, ciphertext in stored_ciphertexts(project).items():
        key, plaintext = decrypt_with_one_key(ciphertext)
        assert plaintext == expected[label], label
        after_crash[key].add(label)
    # A row is reported once its UPDATE has committed: each one reported is under the new
    # key, and at most one more (committed, killed before it was reported).
    assert printed <= after_crash["new"]
    assert len(after_crash["new"] - printed) <= 1
    assert len(after_crash["new"]) >= kill_after
    assert after_crash["old"], "it finished before it was killed"

    resumed = project.run_json("reencrypt_secrets", encryption_keys=rotated_keys)
    assert resumed == {
        "reencrypted": len(after_crash["old"]),
        "already_current": len(after_crash["new"]),
        "failed": [],
    }
    for label, ciphertext in stored_ciphertexts(project).items():
        assert FERNETS["new"].decrypt(ciphertext.encode()) == expected[label], label
    again = project.run_json("reencrypt_secrets", encryption_keys=rotated_keys)
    assert again == {"reencrypted": 0, "already_current": len(expected), "failed": []}

    # Only the new encryption key from now on: every secret verifies, and an assertion is
    # exchanged for tokens signed by the active signing key (its private half decrypted).
    key_id = next(key_id for key_id, secrets in seeded.items() if len(secrets) == 1)
    used = json.loads(
        project.shell(
            USE_API_KEYS % {"secret": seeded[key_id][0], "key_id": key_id},
            encryption_keys=(FERNET_KEY_NEW,),
        )
    )
    assert used["verifiable"] == seeded
    assert used["status"] == 200
    (active,) = project.query("SELECT kid FROM django_tokens_signingkey WHERE state = 'active'")
    assert used["kid"] == active[0]
