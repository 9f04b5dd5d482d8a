"""Create the example's demo data (idempotent) and print how to call each endpoint."""

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model

from django_tokens import api_keys, keystore
from django_tokens.conf import token_settings
from django_tokens.models import ApiKey, UserMetadata
from example_project.demo.models import CustomerProfile
from example_project.demo.views import DEMO_PUBLIC_CLIENT_ID

ADMIN = ("admin", "admin-demo-password")
DEMO = ("demo", "demo-password")
DEMO_KEY_NAME = "demo-key"
DEMO_CLIENT_ID = "demo-client"


class Command(BaseCommand):
    help = (
        "Create a superuser, a demo user with an API key, and the signing keys; print the demo "
        "credentials. The demo key's secret is rotated on each run, since a secret is only "
        "ever shown once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        admin, _ = users.objects.get_or_create(
            username=ADMIN[0],
            defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
        )
        admin.set_password(ADMIN[1])
        admin.save()
        demo, _ = users.objects.get_or_create(
            username=DEMO[0],
            defaults={"email": "demo@example.com", "first_name": "Demo", "last_name": "User"},
        )
        demo.set_password(DEMO[1])
        demo.save()
        CustomerProfile.objects.get_or_create(
            user=demo,
            defaults={"phone": "25472100200", "client": "Demo_Client", "parent": "Demo_Parent"},
        )
        UserMetadata.objects.update_or_create(
            user=demo,
            defaults={
                "email_verified": True,
                "app_metadata": {"plan": "demo", "roles": ["reader"]},
                "user_metadata": {"theme": "dark", "language": "en"},
            },
        )
        key = ApiKey.objects.filter(owner=demo, name=DEMO_KEY_NAME, revoked_at=None).first()
        if key is None:
            issued = api_keys.issue(demo, name=DEMO_KEY_NAME)
        else:
            issued = api_keys.rotate_secret(key.key_id)
        base_url = options["base_url"].rstrip("/")
        client_secret = self._confidential_client(demo)
        self._public_client(demo, base_url)
        keystore.ensure_keys()
        self.stdout.write(
            self._instructions(base_url, issued.api_key.key_id, issued.secret, client_secret)
        )

    def _confidential_client(self, owner: Any) -> str:
        """The demo OAuth client; its secret (stored hashed) is replaced on every run."""
        secret = generate_client_secret()
        applications = get_application_model()
        application = applications.objects.filter(client_id=DEMO_CLIENT_ID).first()
        if application is None:
            application = applications(
                client_id=DEMO_CLIENT_ID,
                name="Demo confidential client",
                user=owner,
                client_type=applications.CLIENT_CONFIDENTIAL,
                authorization_grant_type=applications.GRANT_CLIENT_CREDENTIALS,
            )
        application.client_secret = secret
        application.save()
        return secret

    def _public_client(self, owner: Any, base_url: str) -> None:
        """The demo public client (a browser app): authorization code with PKCE."""
        applications = get_application_model()
        applications.objects.update_or_create(
            client_id=DEMO_PUBLIC_CLIENT_ID,
            defaults={
                "name": "Demo browser app",
                "user": owner,
                "client_type": applications.CLIENT_PUBLIC,
                "authorization_grant_type": applications.GRANT_AUTHORIZATION_CODE,
                "redirect_uris": f"{base_url}/demo/callback",
                "client_secret": "",
            },
        )

    def _authorize_link(self, url: str) -> tuple[str, str]:
        """A fresh PKCE verifier and the authorize link that carries its S256 challenge."""
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": DEMO_PUBLIC_CLIENT_ID,
                "redirect_uri": f"{url}/demo/callback",
                "scope": "openid profile email read",
                "state": secrets.token_urlsafe(12),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return verifier, f"{url}/oauth2/authorize?{query}"

    def _instructions(self, url: str, key_id: str, secret: str, client_secret: str) -> str:
        verifier, authorize_link = self._authorize_link(url)
        if "password" in token_settings.REFRESH_COOKIE_SERVICES:
            cookie_mode = (
                "The password service is in the refresh-cookie mode (TOKENS_REFRESH_COOKIE):\n"
                "  /api/token sets the refresh token as an HttpOnly cookie instead of the body."
            )
        else:
            cookie_mode = (
                "To see the refresh-cookie mode, start with: "
                "TOKENS_REFRESH_COOKIE=password ./run-example"
            )
        return f"""
Demo data is ready.

  Admin:      {url}/admin/   user {ADMIN[0]!r}, password {ADMIN[1]!r}
  Demo user:  {DEMO[0]!r}, password {DEMO[1]!r}

Get a token (password flow, seed 001):
  curl -s -X POST {url}/api/token -H 'Content-Type: application/json' \\
       -d '{{"username": "{DEMO[0]}", "password": "{DEMO[1]}"}}'

The same, with the credentials in headers:
  curl -s -X POST {url}/api/token -H 'username: {DEMO[0]}' -H 'password: {DEMO[1]}'

Call the protected API with the access token:
  curl -s {url}/api/me -H "Authorization: Bearer $ACCESS_TOKEN"

Refresh (the refresh token rotates; the old one stops working):
  curl -s -X POST {url}/api/token/refresh -H 'Content-Type: application/json' \\
       -d "{{\\"refresh_token\\": \\"$REFRESH_TOKEN\\"}}"

Log out (revokes the access token's session; 204):
  curl -s -X POST {url}/api/token/logout -H "Authorization: Bearer $ACCESS_TOKEN"

Front end (one static page of plain JavaScript): open {url}/demo/
  {cookie_mode}
  From a second origin: python3 -m http.server 8001 --bind 127.0.0.1 \\
       --directory example_project/demo/frontend
  then open http://127.0.0.1:8001/?api={url}

All in one go (needs python3 for the JSON):
  ACCESS_TOKEN=$(curl -s -X POST {url}/api/token \\
       -H 'username: {DEMO[0]}' -H 'password: {DEMO[1]}' \\
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {url}/api/me -H "Authorization: Bearer $ACCESS_TOKEN"

API-key tokens (seed 000) with the demo user's key:
  export KEY_ID={key_id} SECRET={secret}
  .venv/bin/python examples/api_key_client.py {url}     # PyJWT signs the assertion
  examples/api_key_client.sh {url}                      # bash + openssl + curl

Log in by email (same response shape), then refresh with the refresh_token it returns:
  curl -s -X POST {url}/auth/login -H 'Content-Type: application/json' \\
       -d '{{"email": "demo@example.com", "password": "{DEMO[1]}"}}'
  curl -s -X POST {url}/auth/refresh -H 'Content-Type: application/json' \\
       -d "{{\\"refresh_token\\": \\"$REFRESH_TOKEN\\"}}"

OAuth 2.0 client credentials (seed 002) with the demo confidential client:
  curl -s -u '{DEMO_CLIENT_ID}:{client_secret}' \\
       -d grant_type=client_credentials -d 'scope=read' {url}/oauth2/token

OAuth 2.0 authorization code with PKCE, in a browser (demo public client): open
  {authorize_link}
sign in as {DEMO[0]!r} / {DEMO[1]!r}, allow, and the callback page shows the code and the
curl that exchanges it; it needs the PKCE verifier of this link:
  export CODE_VERIFIER={verifier}
Then refresh, and revoke (RFC 7009):
  curl -s -d grant_type=refresh_token -d client_id={DEMO_PUBLIC_CLIENT_ID} \\
       -d refresh_token="$REFRESH_TOKEN" {url}/oauth2/token
  curl -s -d client_id={DEMO_PUBLIC_CLIENT_ID} -d token="$REFRESH_TOKEN" {url}/oauth2/revoke
Who the token belongs to (OpenID Connect userinfo) and what it is (RFC 7662, for clients):
  curl -s {url}/oauth2/userinfo -H "Authorization: Bearer $ACCESS_TOKEN"
  curl -s -u '{DEMO_CLIENT_ID}:{client_secret}' -d token="$ACCESS_TOKEN" {url}/oauth2/introspect

Discovery:           curl -s {url}/.well-known/openid-configuration
                     curl -s {url}/.well-known/oauth-authorization-server
Public keys (JWKS):  curl -s {url}/.well-known/jwks.json
OpenAPI schema:      curl -s {url}/api/schema
"""
