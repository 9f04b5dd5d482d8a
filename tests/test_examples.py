"""The client scripts in examples/ work against a running server, as the README shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from django_tokens import api_keys
from tests.shapes import KEYCLOAK_KEYS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def issued_key(transactional_db: None, django_user_model: Any) -> api_keys.IssuedSecret:
    owner = django_user_model.objects.create_user(username="script", password="unused-9271")
    return api_keys.issue(owner, name="script")


def run_client(command: list[str], issued: api_keys.IssuedSecret) -> dict[str, Any]:
    env = {**os.environ, "KEY_ID": issued.api_key.key_id, "SECRET": issued.secret}
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(completed.stdout)


def test_python_client_exchanges_the_key_for_tokens(live_server: Any, issued_key: Any) -> None:
    body = run_client(
        [sys.executable, str(EXAMPLES / "api_key_client.py"), live_server.url], issued_key
    )
    assert set(body) == KEYCLOAK_KEYS


@pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("curl")), reason="needs openssl and curl"
)
def test_shell_client_exchanges_the_key_for_tokens(live_server: Any, issued_key: Any) -> None:
    body = run_client(["bash", str(EXAMPLES / "api_key_client.sh"), live_server.url], issued_key)
    assert set(body) == KEYCLOAK_KEYS
    assert body["token_type"] == "bearer"


def test_a_wrong_secret_is_refused_by_the_python_client(live_server: Any, issued_key: Any) -> None:
    wrong = api_keys.IssuedSecret(issued_key.api_key, "not-the-secret-" + "x" * 30)
    body = run_client([sys.executable, str(EXAMPLES / "api_key_client.py"), live_server.url], wrong)
    assert body == {
        "status": 401,
        "error": "invalid_credentials",
        "message": "Missing or invalid credentials",
    }
