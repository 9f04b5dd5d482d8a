"""The quick start's demo data: ``seed_demo`` prints commands that work as printed.

The printed curl lines are run with bash against ``live_server``; the printed authorize link
is followed through the login and consent pages to the demo callback page, whose exchange
command, with the printed PKCE verifier, returns tokens.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import subprocess
from typing import Any

import pytest
import requests
from django.core.management import call_command
from oauth2_provider.models import Application

pytestmark = pytest.mark.django_db(transaction=True)


def seed(base_url: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", f"--base-url={base_url}", stdout=out)
    return out.getvalue()


def command_after(output: str, marker: str) -> str:
    """The (backslash-continued) command on the lines after the line holding ``marker``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line) + 1
    command = [lines[start]]
    while command[-1].endswith("\\"):
        start += 1
        command.append(lines[start])
    return "\n".join(command)


def bash(command: str, **env: str) -> Any:
    completed = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def form_fields(page: str) -> dict[str, str]:
    """The named inputs and the submit button of the page's form."""
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1) if value else "")
    return fields


def test_seeding_twice_keeps_one_of_each_demo_client(live_server: Any) -> None:
    seed(live_server.url)
    seed(live_server.url)
    public = Application.objects.get(client_id="demo-spa")
    assert public.client_type == Application.CLIENT_PUBLIC
    assert public.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert public.redirect_uris == f"{live_server.url}/demo/callback"
    confidential = Application.objects.get(client_id="demo-client")
    assert confidential.client_type == Application.CLIENT_CONFIDENTIAL


def test_printed_client_credentials_curl_returns_a_token(live_server: Any) -> None:
    output = seed(live_server.url)
    body = bash(command_after(output, "OAuth 2.0 client credentials"))
    assert body["token_type"] == "bearer"
    assert body["scope"] == "read"


def test_printed_authorize_link_leads_through_login_and_consent_to_tokens(
    live_server: Any,
) -> None:
    output = seed(live_server.url)
    link = command_after(output, "in a browser (demo public client)").strip()
    verifier = re.search(r"export CODE_VERIFIER=(\S+)", output).group(1)  # type: ignore[union-attr]
    browser = requests.Session()

    login = browser.get(link, timeout=30)
    assert urlpath(login.url) == "/oauth2/login"
    fields = form_fields(login.text)
    fields.update(username="demo", password="demo-password")
    consent = browser.post(login.url, data=fields, timeout=30)
    assert urlpath(consent.url) == "/oauth2/authorize"
    assert "Demo browser app" in consent.text
    assert "See your email address" in consent.text
    decision = form_fields(consent.text)
    decision["allow"] = "on"
    callback = browser.post(consent.url, data=decision, timeout=30)

    assert urlpath(callback.url) == "/demo/callback"
    exchange = re.search(r'<pre id="exchange">(.*?)</pre>', callback.text, re.S)
    assert exchange, callback.text
    tokens = bash(html.unescape(exchange.group(1)), CODE_VERIFIER=verifier)
    assert {"access_token", "refresh_token", "id_token"} <= tokens.keys()
    assert tokens["scope"] == "openid profile email read"

    refreshed = bash(
        command_after(output, "Then refresh, and revoke"), REFRESH_TOKEN=tokens["refresh_token"]
    )
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    userinfo = bash(
        command_after(output, "OpenID Connect userinfo"), ACCESS_TOKEN=refreshed["access_token"]
    )
    assert userinfo["preferred_username"] == "demo"


def test_callback_page_shows_a_denial(live_server: Any) -> None:
    page = requests.get(
        f"{live_server.url}/demo/callback",
        params={"error": "access_denied", "state": "s"},
        timeout=30,
    )
    assert page.status_code == 200
    assert "access_denied" in page.text
    assert 'id="exchange"' not in page.text


def urlpath(url: str) -> str:
    return requests.utils.urlparse(url).path
