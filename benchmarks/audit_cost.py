"""What the audit trail costs the token endpoints: the same requests with ``AUDIT`` on and
off, in one process, interleaved in blocks so that drift hits both alike.

    .venv/bin/python benchmarks/audit_cost.py                   # SQLite file in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/audit_cost.py

Requests go through Django's test client (the whole middleware and view stack, no socket).
Prints, per endpoint, the median time of a request with and without the trail and their
ratio. The database named by DATABASE_URL is migrated and written to: use a scratch one.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="django-tokens-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.sqlite3'}")
    os.environ.setdefault("EXAMPLE_VAR_DIR", str(scratch))
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=30, help="blocks per mode (default 30)")
    parser.add_argument("--block-size", type=int, default=10, help="requests a block (default 10)")
    args = parser.parse_args()
    setup()

    import jwt
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import Application

    from django_tokens import api_keys
    from django_tokens.models import AuditEvent

    users = get_user_model()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    user = users.objects.create_user(name, password="bench-password", email=f"{name}@x.test")
    issued = api_keys.issue(user, name="bench")
    secret = generate_client_secret()
    application = Application.objects.create(
        name=name,
        client_id=name,
        client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    basic = "Basic " + base64.b64encode(f"{application.client_id}:{secret}".encode()).decode()
    client = Client()
    first = client.post(
        "/api/token",
        {"username": name, "password": "bench-password"},
        content_type="application/json",
    )
    assert first.status_code == 200, first.content[:300]
    state = {"refresh": first.json()["refresh_token"]}

    def password_refresh() -> None:
        response = client.post(
            "/api/token/refresh",
            {"refresh_token": state["refresh"]},
            content_type="application/json",
        )
        assert response.status_code == 200, response.content[:300]
        state["refresh"] = response.json()["refresh_token"]

    def api_key_exchange() -> None:
        now = int(time.time())
        assertion = jwt.encode(
            {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
            issued.secret,
            algorithm="HS256",
            headers={"kid": issued.api_key.key_id},
        )
        response = client.post("/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion}")
        assert response.status_code == 200, response.content[:300]

    def client_credentials() -> None:
        response = client.post(
            "/oauth2/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic
        )
        assert response.status_code == 200, response.content[:300]

    operations: dict[str, Callable[[], None]] = {
        "POST /api/token/refresh": password_refresh,
        "POST /auth/api-key": api_key_exchange,
        "POST /oauth2/token (client_credentials)": client_credentials,
    }
    audit_off = override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, "AUDIT": False})
    vendor = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"database: {vendor}; {args.blocks} blocks x {args.block_size} requests per mode")
    print(f"{'endpoint':42} {'trail on':>10} {'trail off':>10} {'on/off':>7}")
    for label, operation in operations.items():
        for _ in range(20):
            operation()  # warm up
        timings: dict[bool, list[float]] = {True: [], False: []}
        for block in range(args.blocks * 2):
            on = block % 2 == 0
            with audit_off if not on else nullcontext():
                for _ in range(args.block_size):
                    started = time.perf_counter()
                    operation()
                    timings[on].append(time.perf_counter() - started)
        with_trail, without = (statistics.median(timings[mode]) * 1000 for mode in (True, False))
        print(f"{label:42} {with_trail:8.2f}ms {without:8.2f}ms {with_trail / without:7.3f}")
    print(f"audit entries written: {AuditEvent.objects.count()}")


if __name__ == "__main__":
    main()
