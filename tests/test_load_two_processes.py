"""Two gunicorn processes on one PostgreSQL database and one Redis, under a bounded load from a
client process of its own (``tests/loadclient.py``, on loopback): what one process decides,
the other honours, while both are busy.

- Assertion replay: every assertion is sent to both processes at the same moment; exactly one
  answer per assertion is 200, the other 401, over every assertion of the run.
- Throttles: wrong passwords for one username, spread over both processes and sent at once,
  are refused with 401 exactly ``THROTTLE_FAILURES_PER_USERNAME`` times, then 429 with
  ``Retry-After`` on both processes, the right password included.
- Revocation: a logout on one process, and the other refuses the access token on the very
  next request, and its refresh token.
- Rotation: refresh chains of each service, every refresh on the other process than the one
  before, leave one live refresh token, the last one issued.
- Zero errors: no 5xx and no failed connection over the whole run, and no traceback in the
  servers' logs.

The load figures (requests, duration, rate, latency percentiles) are printed (``-s``). The test
takes about ``LOAD_SECONDS`` plus the servers' start, some 35 s in all; it asserts no timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from oauth2_provider.models import Application
from oauth2_provider.models import RefreshToken as DOTRefreshToken

from django_tokens import api_keys, sessions
from django_tokens.conf import token_settings
from django_tokens.crypto import digest
from django_tokens.models import ApiKey, RefreshToken, Session
from tests.test_multiprocess import REPO_ROOT, Server, obtain, two_servers
from tests.test_oauth2_multiprocess import CLIENT_ID, authorize, exchange

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.long]

LOAD_SECONDS = 20
REPLAY_LANES = 3
#: Bounds by count, should the servers be fast enough to reach them within the time.
MAX_ASSERTIONS_PER_LANE = 2000
MAX_REFRESHES_PER_CHAIN = 500
MAX_REVOCATION_ROUNDS = 500
MAX_READS_PER_READER = 2000
READERS = 1
THROTTLE_ATTEMPTS = 24
#: Well below what the run sends; only so that the test cannot pass on an empty run.
AT_LEAST = {"assertions": 20, "revocation_rounds": 4, "refreshes": 2, "reads": 10}
CLIENT_TIMEOUT = LOAD_SECONDS + 60


@pytest.fixture
def servers(transactional_db: None, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    yield from two_servers(tmp_path)


def oauth2_refresh_token(a: Server, b: Server) -> str:
    """A refresh token of a public client, from the code flow on ``a`` exchanged at ``b``."""
    Application.objects.create(
        name="Load SPA",
        client_id=CLIENT_ID,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{a.url}/demo/callback {b.url}/demo/callback",
        client_secret="",
    )
    return str(exchange(b, *authorize(a))["refresh_token"])


def run_load_client(config: dict[str, Any], directory: Path) -> dict[str, Any]:
    config_path, result_path = directory / "load-config.json", directory / "load-result.json"
    config_path.write_text(json.dumps(config))
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "loadclient.py"), config_path, result_path],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def window_of(moment: float) -> int:
    return int(moment) // token_settings.THROTTLE_WINDOW


def test_two_processes_under_load_agree_on_replays_throttles_revocation_and_rotation(
    servers: tuple[Server, Server],
    user: Any,
    password_credentials: dict[str, str],
    django_user_model: Any,
    tmp_path: Path,
) -> None:
    a, b = servers
    django_user_model.objects.create_user(username="victim", password="victim-password")
    replay_keys = [api_keys.issue(user, name=f"replay {lane}") for lane in range(REPLAY_LANES)]
    revocation_key = api_keys.issue(user, name="revocation")
    rotation_key = api_keys.issue(user, name="rotation")
    oauth2_first = oauth2_refresh_token(a, b)
    reader = obtain(b, password_credentials)

    def key(issued: api_keys.IssuedSecret) -> dict[str, str]:
        return {"key_id": issued.api_key.key_id, "secret": issued.secret}

    results = run_load_client(
        {
            "servers": [a.url, b.url],
            "duration": LOAD_SECONDS,
            "replay": {"keys": [key(k) for k in replay_keys], "max": MAX_ASSERTIONS_PER_LANE},
            "throttle": {
                "username": "victim",
                "password": "victim-password",
                "wrong_password": "not-the-password",
                "attempts": THROTTLE_ATTEMPTS,
                "window": token_settings.THROTTLE_WINDOW,
            },
            "revocation": {
                "credentials": password_credentials,
                "api_key": key(revocation_key),
                "max_rounds": MAX_REVOCATION_ROUNDS,
            },
            "rotation": {
                "password": {
                    "credentials": password_credentials,
                    "max_steps": MAX_REFRESHES_PER_CHAIN,
                },
                "api_key": {"key": key(rotation_key), "max_steps": MAX_REFRESHES_PER_CHAIN},
                "oauth2": {
                    "refresh_token": oauth2_first,
                    "client_id": CLIENT_ID,
                    "max_steps": MAX_REFRESHES_PER_CHAIN,
                },
            },
            "readers": {
                "threads": READERS,
                "access_token": reader["access_token"],
                "max_reads": MAX_READS_PER_READER,
            },
        },
        tmp_path,
    )

    load = results["load"]
    figures = {
        "assertions": len(results["replay"]),
        "revocation_rounds": len(results["revocation"]),
        "refreshes": {chain["service"]: len(chain["steps"]) for chain in results["rotation"]},
    }
    print(f"\nload on two processes: {json.dumps({**load, **figures})}")
    # Zero errors: every request answered, none with a 5xx.
    assert load["errors"] == 0, results["errors"]
    assert_replays_accepted_once(results["replay"], replay_keys)
    assert_throttled_across_processes(results)
    assert_revocation_honoured_at_once(results["revocation"])
    chains = {chain["service"]: chain for chain in results["rotation"]}
    assert_password_chain(chains["password"])
    assert_api_key_chain(chains["api_key"])
    assert_oauth2_chain(chains["oauth2"], oauth2_first)
    for read in results["readers"]:
        assert read["reads"] >= AT_LEAST["reads"]
        assert read["unexpected"] == []
    for server in servers:  # no worker was killed and restarted (a timeout) under the load
        assert server.log.read_text(errors="replace").count("Booting worker") == 1


def assert_replays_accepted_once(
    replay: list[dict[str, Any]], keys: list[api_keys.IssuedSecret]
) -> None:
    assert len(replay) >= AT_LEAST["assertions"]
    winners: Counter[str] = Counter()
    opened = set()
    for pair in replay:
        answers = sorted(pair["answers"], key=lambda answer: answer["status"])
        assert [answer["status"] for answer in answers] == [200, 401], pair
        assert {answer["server"] for answer in answers} == {"a", "b"}
        assert answers[1]["error"] == "invalid_credentials", pair
        winners[answers[0]["server"]] += 1
        opened.add(answers[0]["session_state"])
    # The race was real: each process won some and lost some.
    assert winners["a"] > 0, winners
    assert winners["b"] > 0, winners
    assert len(opened) == len(replay)
    in_database = Session.objects.filter(api_key__in=[issued.api_key for issued in keys])
    assert {str(pk) for pk in in_database.values_list("pk", flat=True)} == opened


def assert_throttled_across_processes(results: dict[str, Any]) -> None:
    limit = token_settings.THROTTLE_FAILURES_PER_USERNAME
    answers = results["throttle"]
    assert len(answers) == THROTTLE_ATTEMPTS
    began, ended = results["throttle_window"]
    assert window_of(began) == window_of(ended), "the burst straddled two throttle windows"
    refused = [answer for answer in answers if answer["status"] == 401]
    assert len(refused) == limit, answers
    assert {answer["error"] for answer in refused} == {"invalid_credentials"}
    throttled = [answer for answer in answers if answer["status"] != 401]
    throttled += results["throttle_right_password"]
    for answer in throttled:
        assert answer["status"] == 429, answer
        assert answer["error"] == "too_many_attempts"
        assert int(answer["retry_after"]) >= 1
    assert {answer["server"] for answer in throttled} == {"a", "b"}
    assert {answer["server"] for answer in results["throttle_right_password"]} == {"a", "b"}


def assert_revocation_honoured_at_once(rounds: list[dict[str, Any]]) -> None:
    assert len(rounds) >= AT_LEAST["revocation_rounds"]
    assert {(entry["service"], entry["logged_in_on"]) for entry in rounds} == {
        ("password", "a"),
        ("password", "b"),
        ("api_key", "a"),
        ("api_key", "b"),
    }
    for entry in rounds:
        assert (entry["login"], entry["before"], entry["logout"]) == (200, 200, 204), entry
        # The other process refuses the access token on the very next request.
        assert entry["after"] == 401, entry
        assert entry["refresh"] == 401, entry
    revoked = Session.objects.filter(pk__in=[entry["session"] for entry in rounds])
    assert revoked.count() == len(rounds)
    assert set(revoked.values_list("revoke_reason", flat=True)) == {"logout"}


def assert_chain_answers(chain: dict[str, Any]) -> list[dict[str, Any]]:
    """Every refresh answered 200 and its access token accepted by the other process."""
    steps = chain["steps"]
    assert chain["start"] == 200, chain
    assert len(steps) >= AT_LEAST["refreshes"], chain
    for number, step in enumerate(steps):
        assert step["status"] == 200, (number, step)
        assert step["me"] == 200, (number, step)
        assert step["used_on"] != step["server"]
    assert {step["server"] for step in steps} == {"a", "b"}
    assert chain["final_refresh_token"]
    return list(steps)


def assert_one_live_member(session: Session, refreshes: int, live_hash: str) -> None:
    assert session.revoked_at is None
    assert RefreshToken.objects.filter(session=session).count() == refreshes + 1
    (live,) = RefreshToken.objects.filter(session=session, used_at__isnull=True)
    assert live.token_hash == live_hash


def assert_password_chain(chain: dict[str, Any]) -> None:
    steps = assert_chain_answers(chain)
    (session_id,) = {step["session"] for step in steps}
    session = Session.objects.get(pk=session_id, service=Session.Service.PASSWORD)
    assert_one_live_member(session, len(steps), digest(chain["final_refresh_token"]))


def assert_api_key_chain(chain: dict[str, Any]) -> None:
    steps = assert_chain_answers(chain)
    (session_id,) = {step["session"] for step in steps}
    session = Session.objects.get(pk=session_id, service=Session.Service.API_KEY)
    assert ApiKey.objects.get(pk=session.api_key_id).name == "rotation"
    final = jwt.decode(chain["final_refresh_token"], options={"verify_signature": False})
    assert_one_live_member(session, len(steps), digest(final["jti"]))


def assert_oauth2_chain(chain: dict[str, Any], first: str) -> None:
    steps = assert_chain_answers(chain)
    family = DOTRefreshToken.objects.get(token_checksum=sessions.token_checksum(first)).token_family
    members = DOTRefreshToken.objects.filter(token_family=family)
    assert members.count() == len(steps) + 1
    (live,) = members.filter(revoked__isnull=True)
    assert live.token_checksum == sessions.token_checksum(chain["final_refresh_token"])
