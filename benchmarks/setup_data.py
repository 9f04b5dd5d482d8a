"""Prepare one side's data in the benchmark database and print its credentials as JSON.

    DJANGO_SETTINGS_MODULE=benchmarks.ours_settings python benchmarks/setup_data.py ours
    DJANGO_SETTINGS_MODULE=benchmarks.peers.settings python benchmarks/setup_data.py peer

Run by ``benchmarks/run.py`` (ours first: it migrates most tables) with the servers' own
environment. Idempotent: the benchmark user's password is reset, the API key's and the OAuth
clients' secrets are replaced on every run (a secret is never stored in the clear).
The last line of the output is ``BENCH-JSON {...}``.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USERNAME = "bench-user"
PASSWORD = "bench-password-0123456789"
EMAIL = "bench-user@example.com"
API_KEY_NAME = "bench"
OURS_CLIENT_ID = "bench-ours-client"
DOT_PBKDF2_CLIENT_ID = "bench-dot-pbkdf2"
DOT_MD5_CLIENT_ID = "bench-dot-md5"


def _user() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username=USERNAME, defaults={"email": EMAIL, "first_name": "Bench", "last_name": "User"}
    )
    user.set_password(PASSWORD)  # the first hasher of both sides: MD5
    user.is_active = True
    user.save()
    return user


def _client_credentials_app(client_id: str, owner: Any, client_secret: str) -> Any:
    from oauth2_provider.models import get_application_model

    applications = get_application_model()
    application = applications.objects.filter(client_id=client_id).first()
    if application is None:
        application = applications(
            client_id=client_id,
            name=client_id,
            user=owner,
            client_type=applications.CLIENT_CONFIDENTIAL,
            authorization_grant_type=applications.GRANT_CLIENT_CREDENTIALS,
        )
    # A secret that is already a hash is stored as it is; a plain one is hashed by DOT's
    # CLIENT_SECRET_HASHER on save.
    application.client_secret = client_secret
    application.save()
    return application


#: Distinct access tokens for the verify row that never presents one token twice in a row:
#: more than a process remembers (``keystore.VERIFIED_TOKENS_REMEMBERED``), so every request
#: checks a signature.
VARIED_TOKENS = 4096


def _varied_access_tokens(user: Any) -> list[str]:
    """Access tokens of one password session, minted in-process as ``POST /api/token`` would
    (the same keys, claims and lifetime), each with its own ``jti``."""
    from django_tokens import keystore, sessions
    from django_tokens.conf import token_settings
    from django_tokens.models import Session
    from django_tokens.tokens import issue_access_token

    issuer = token_settings.ISSUER or "http://127.0.0.1"
    assert VARIED_TOKENS > keystore.VERIFIED_TOKENS_REMEMBERED
    session = sessions.start(user, service=Session.Service.PASSWORD).session
    return [
        issue_access_token(
            user,
            session_id=str(session.pk),
            scopes=token_settings.PASSWORD_SCOPES,
            service=Session.Service.PASSWORD,
            issuer=issuer,
        ).token
        for _ in range(VARIED_TOKENS)
    ]


def ours() -> dict[str, Any]:
    from django.db import connection
    from oauth2_provider.generators import generate_client_secret

    from django_tokens import api_keys, keystore
    from django_tokens.models import ApiKey

    user = _user()
    keystore.ensure_keys()
    key = ApiKey.objects.filter(owner=user, name=API_KEY_NAME, revoked_at=None).first()
    issued = (
        api_keys.issue(user, name=API_KEY_NAME)
        if key is None
        else api_keys.rotate_secret(key.key_id)
    )
    client_secret = generate_client_secret()  # 128 characters: the fast SHA-256 hasher
    application = _client_credentials_app(OURS_CLIENT_ID, user, client_secret)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        else:
            cursor.execute("SELECT sqlite_version()")
        server_version = cursor.fetchone()[0]
    return {
        "username": USERNAME,
        "password": PASSWORD,
        "varied_access_tokens": _varied_access_tokens(user),
        "api_key_id": issued.api_key.key_id,
        "api_key_secret": issued.secret,
        "client_id": OURS_CLIENT_ID,
        "client_secret": client_secret,
        "client_secret_hasher": application.client_secret.split("$", 1)[0],
        "database": f"{connection.vendor} {server_version}",
    }


def peer() -> dict[str, Any]:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
    from django.utils import timezone
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_access_token_model
    from oauthlib.common import generate_token

    user = _user()
    clients, applications = {}, {}
    for client_id, hasher in ((DOT_PBKDF2_CLIENT_ID, "pbkdf2_sha256"), (DOT_MD5_CLIENT_ID, "md5")):
        secret = generate_client_secret()
        hashed = make_password(secret, hasher=hasher)
        applications[hasher] = _client_credentials_app(client_id, user, hashed)
        clients[hasher] = {"client_id": client_id, "client_secret": secret}
    # An access token of the user for DOT's OAuth2Authentication, as the authorization-code
    # flow would leave it (DOT's own model, opaque token).
    token = generate_token()
    get_access_token_model().objects.create(
        user=user,
        application=applications["md5"],
        token=token,
        expires=timezone.now() + timedelta(hours=3),
        scope="read write",
    )
    return {
        "username": USERNAME,
        "password": PASSWORD,
        "dot_clients": clients,
        "dot_access_token": token,
        "pbkdf2_iterations": PBKDF2PasswordHasher.iterations,
    }


def main() -> None:
    side = sys.argv[1]
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    result = ours() if side == "ours" else peer()
    print("BENCH-JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
