"""The demo front end, served from a second origin, in a real browser.

The API is the live server (``http://localhost:<port>``) with the password service in the
refresh-cookie mode and the demo's origin in ``CORS_ALLOWED_ORIGINS``. The demo page
(``example_project/demo/frontend``) is served by a plain static file server on another port:
a second origin of the same site, as a front end on ``app.example.com`` calling
``api.example.com`` would be. Debian's Chromium, driven by Playwright, logs in on that page,
watches it call ``/api/me`` and refresh silently before the (shortened) access-token lifetime
runs out, reloads it, logs out, and replays the refresh cookie afterwards. An admin revokes
the session in a second browser profile while the page watches. Pages on an origin that is
not listed, of the same site and of another site, try the cookie without the Origin proof.
Last, a page on each origin calls every token endpoint with ``fetch()`` (``/api/token``,
``/api/token/refresh``, ``/auth/login``, ``/auth/refresh``, ``/oauth2/token``): the listed
origin reads every answer, the other is blocked on every one.

Rows are created before the browser starts, and outcomes are checked over HTTP with
``requests`` (see the ``browser`` fixture in ``tests/browser.py``).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import override_settings
from oauth2_provider.models import Application

from django_tokens import keystore
from example_project.demo.views import FRONTEND_DIR
from tests.browser import (
    CLOSE,
    SKIP_IF_ASKED,
    Account,
    admin_log_in,
    browser_fixture,  # noqa: F401 (a fixture: pytest finds it here)
    copy_to_docs,
    fresh_page,
    run_action,
    screenshot,
    submit,
)
from tests.shapes import KEYCLOAK_KEYS

with contextlib.suppress(ImportError):  # reported by the ``browser`` fixture
    from playwright.sync_api import Browser, Page, expect

pytestmark = SKIP_IF_ASKED

OWNER = Account("alice", "alice-password")  # the ``user`` fixture
SUPERUSER = Account("root", "root-password")
COOKIE = "refresh_token"
REFRESH_PATH = "/api/token/refresh"
SESSIONS = "/admin/django_tokens/session/"
#: Short enough that the page refreshes within the test (at three quarters of it).
ACCESS_TOKEN_LIFETIME = 8
VIEWPORT = {"width": 1100, "height": 900}
CLIENT_SECRET = "front-end-check-client-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[int]:
    """A plain static file server for ``directory`` on 127.0.0.1; yields its port."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


ATTACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not the front end</title></head>
<body>
<form id="attack" method="post" action="{api}{refresh}" enctype="text/plain">
  <input name='{{"refresh_token": "' value='"}}'>
</form>
<p id="fetch-result">pending</p>
</body></html>
"""


@dataclass(frozen=True)
class Origins:
    api: str
    front_end: str
    #: Same site (localhost), another port, not in CORS_ALLOWED_ORIGINS.
    unlisted: str
    #: Another site altogether (127.0.0.1 against localhost).
    cross_site: str

    def demo(self, poll: int = 1) -> str:
        return f"{self.front_end}/?api={self.api}&poll={poll}"


@pytest.fixture
def rows(django_user_model: Any, user: Any) -> str:
    """The superuser, the first signing keys, and an OAuth 2.0 client; its client id."""
    django_user_model.objects.create_superuser(
        username=SUPERUSER.username, email="root@example.com", password=SUPERUSER.password
    )
    keystore.ensure_keys()
    application = Application.objects.create(
        name="front-end-check",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=CLIENT_SECRET,
    )
    return str(application.client_id)


@pytest.fixture
def origins(rows: str, live_server: Any, tmp_path: Path) -> Iterator[Origins]:
    """The API in the cookie mode, the demo on a second origin, and an attacker's pages."""
    (tmp_path / "attack.html").write_text(
        ATTACK_PAGE.format(api=live_server.url, refresh=REFRESH_PATH)
    )
    with static_server(FRONTEND_DIR) as front_port, static_server(tmp_path) as other_port:
        found = Origins(
            api=live_server.url,
            front_end=f"http://localhost:{front_port}",
            unlisted=f"http://localhost:{other_port}",
            cross_site=f"http://127.0.0.1:{other_port}",
        )
        tokens = {
            **settings.DJANGO_TOKENS,
            "ISSUER": live_server.url,
            "REFRESH_COOKIE_SERVICES": ["password", "api_key"],
            "ACCESS_TOKEN_LIFETIME": ACCESS_TOKEN_LIFETIME,
        }
        with override_settings(DJANGO_TOKENS=tokens, CORS_ALLOWED_ORIGINS=[found.front_end]):
            yield found


@pytest.fixture
def page(origins: Origins, browser: Browser) -> Iterator[Page]:
    with fresh_page(browser, viewport=VIEWPORT) as page:
        yield page


def open_demo(page: Page, origins: Origins) -> None:
    page.goto(origins.demo())
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def log_in_on_demo(page: Page, origins: Origins) -> None:
    open_demo(page, origins)
    expect(page.locator("#login-panel")).to_be_visible()
    page.get_by_label("Username").fill(OWNER.username)
    page.get_by_label("Password").fill(OWNER.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#session-panel")).to_be_visible()
    expect(page.locator("#me")).to_contain_text(f'"username": "{OWNER.username}"')


def refresh_cookie(page: Page, origins: Origins) -> dict[str, Any]:
    found = [c for c in page.context.cookies(origins.api + REFRESH_PATH) if c["name"] == COOKIE]
    assert len(found) == 1, f"refresh cookie not held by the browser: {page.context.cookies()}"
    return dict(found[0])


def page_json(page: Page, key: str) -> Any:
    return page.evaluate(f"() => JSON.parse(document.getElementById('{key}').textContent)")


def replay(origins: Origins, cookie_value: str) -> requests.Response:
    """The refresh cookie sent again from the front end's origin, by a script."""
    return requests.post(
        origins.api + REFRESH_PATH,
        headers={**CLOSE, "Origin": origins.front_end, "Cookie": f"{COOKIE}={cookie_value}"},
        timeout=10,
    )


def test_the_demo_logs_in_refreshes_silently_and_logs_out_from_another_origin(
    page: Page, origins: Origins, tmp_path: Path
) -> None:
    log_in_on_demo(page, origins)
    expect(page.locator("#mode")).to_have_attribute("data-mode", "cookie")
    claims = page_json(page, "claims")
    me = page_json(page, "me")
    assert claims["sid"] == me["session"]
    assert claims["iss"] == origins.api
    assert claims["exp"] - claims["iat"] == ACCESS_TOKEN_LIFETIME

    # The browser holds the refresh token as an HttpOnly, Secure, SameSite=Strict cookie
    # scoped to the refresh path of the API's host; no script can read it.
    cookie = refresh_cookie(page, origins)
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert (cookie["domain"], cookie["path"]) == ("localhost", REFRESH_PATH)
    expect(page.locator("#page-cookies")).to_have_text("(none)")
    storage = page.evaluate("() => JSON.stringify([localStorage, sessionStorage])")
    assert cookie["value"] not in storage
    assert storage == "[{},{}]"
    api_page = page.context.new_page()
    api_page.goto(origins.api + REFRESH_PATH)  # a 405 in JSON, on the cookie's own path
    assert api_page.evaluate("() => document.cookie") == ""
    api_page.close()

    # Silent refresh before the access token expires: a new token, a rotated cookie.
    expect(page.locator("#refresh-count")).not_to_have_text("0", timeout=15_000)
    refreshed = page_json(page, "claims")
    assert refreshed["jti"] != claims["jti"]
    assert refreshed["sid"] == claims["sid"]
    rotated = refresh_cookie(page, origins)
    assert rotated["value"] != cookie["value"]
    screenshot(page, tmp_path / "demo.png")
    copy_to_docs(tmp_path, {"demo.png": "demo-front-end.png"})

    # A reload forgets the access token; the cookie brings the session back.
    page.reload()
    expect(page.locator("#status")).to_contain_text("restored from the refresh cookie")
    expect(page.locator("#me")).to_contain_text(claims["sid"])
    last = refresh_cookie(page, origins)

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#status")).to_contain_text("Logged out")
    expect(page.locator("#login-panel")).to_be_visible()
    assert [c for c in page.context.cookies() if c["name"] == COOKIE] == []

    # The cookie, replayed after logout, is refused: the session is revoked.
    answer = replay(origins, last["value"])
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_grant"
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#login-panel")).to_be_visible()


def test_the_demo_shows_the_session_revoked_by_an_admin(
    page: Page, origins: Origins, browser: Browser
) -> None:
    log_in_on_demo(page, origins)
    session = page_json(page, "me")["session"]
    with fresh_page(browser, viewport=VIEWPORT) as admin:
        admin_log_in(admin, origins.api, SUPERUSER)
        admin.goto(origins.api + SESSIONS)
        row = admin.locator("#result_list tbody tr").filter(has_text=session)
        expect(row).to_have_count(1)
        row.get_by_role("checkbox").check()
        run_action(admin, "Revoke selected sessions", SESSIONS)
        submit(admin, "Yes, revoke", SESSIONS)
        expect(admin.locator("ul.messagelist li.success")).to_have_text("1 session revoked.")
    # The page polls /api/me every second: the revoked token is refused, so is the refresh.
    expect(page.locator("#status")).to_contain_text("revoked", timeout=10_000)
    expect(page.locator("#login-panel")).to_be_visible()
    log = page.locator("#log")
    expect(log).to_contain_text("/api/me refused the access token (401")
    expect(log).to_contain_text("refresh refused (401 invalid_grant")


def test_other_origins_cannot_use_the_refresh_cookie(page: Page, origins: Origins) -> None:
    log_in_on_demo(page, origins)
    cookie = refresh_cookie(page, origins)

    # Same site, unlisted origin: SameSite=Strict lets the cookie go, the Origin check stops it.
    attacker = page.context.new_page()
    attacker.goto(f"{origins.unlisted}/attack.html")
    with attacker.expect_navigation():
        attacker.evaluate("() => document.getElementById('attack').submit()")
    refusal = attacker.evaluate("() => JSON.parse(document.body.innerText)")
    assert refusal["error"] == "origin_not_allowed", refusal

    # Its scripts get no CORS grant: the browser blocks the response.
    attacker.goto(f"{origins.unlisted}/attack.html")
    outcome = attacker.evaluate(
        """async (url) => {
            try {
                const response = await fetch(url, {method: "POST", credentials: "include"});
                return `read ${response.status}`;
            } catch (error) {
                return `blocked: ${error.name}`;
            }
        }""",
        origins.api + REFRESH_PATH,
    )
    assert outcome == "blocked: TypeError"

    # Another site: the browser does not send the SameSite=Strict cookie at all.
    attacker.goto(f"{origins.cross_site}/attack.html")
    with attacker.expect_navigation():
        attacker.evaluate("() => document.getElementById('attack').submit()")
    answer = attacker.evaluate("() => JSON.parse(document.body.innerText)")
    # Without the cookie there is nothing to check the origin for: the text/plain body is
    # refused as such (with the cookie, the Origin check would have answered 403 first).
    assert answer["error"] == "unsupported_media_type", answer
    attacker.close()

    # None of it consumed the cookie: the front end still refreshes with it.
    assert refresh_cookie(page, origins)["value"] == cookie["value"]
    page.get_by_role("button", name="Refresh now").click()
    expect(page.locator("#log")).to_contain_text("Refreshed (on request)")
    assert refresh_cookie(page, origins)["value"] != cookie["value"]


#: Each token endpoint called as a front end calls it; the outcome of each, by name.
CALL_EACH_ENDPOINT = """async ({api, email, password, username, basic}) => {
    const outcome = {};
    const call = async (name, path, init) => {
        try {
            const response = await fetch(api + path, {credentials: "include", ...init});
            const body = await response.json();
            outcome[name] = [response.status, Object.keys(body).sort()];
        } catch (error) {
            outcome[name] = `blocked: ${error.name}`;
        }
    };
    const json = {"Content-Type": "application/json"};
    await call("/api/token", "/api/token", {method: "POST", headers: json,
        body: JSON.stringify({username, password})});
    await call("/api/token/refresh", "/api/token/refresh", {method: "POST"});
    await call("/auth/login", "/auth/login", {method: "POST", headers: json,
        body: JSON.stringify({email, password})});
    await call("/auth/refresh", "/auth/refresh", {method: "POST"});
    await call("/oauth2/token", "/oauth2/token", {method: "POST",
        headers: {"Authorization": `Basic ${basic}`},
        body: new URLSearchParams({grant_type: "client_credentials", scope: "read"})});
    return outcome;
}"""


def test_each_token_endpoint_answers_the_listed_origin_and_no_other(
    page: Page, origins: Origins, rows: str
) -> None:
    arguments = {
        "api": origins.api,
        "email": "alice@example.com",
        "password": OWNER.password,
        "username": OWNER.username,
        "basic": base64.b64encode(f"{rows}:{CLIENT_SECRET}".encode()).decode(),
    }
    open_demo(page, origins)
    answered = page.evaluate(CALL_EACH_ENDPOINT, arguments)
    password_keys = ["access_token", "expires_in", "token_type"]
    keycloak_keys = sorted(KEYCLOAK_KEYS - {"refresh_token"})
    assert answered == {
        # The cookie mode: no refresh_token in the bodies, the cookie set and then used.
        "/api/token": [200, password_keys],
        "/api/token/refresh": [200, password_keys],
        "/auth/login": [200, keycloak_keys],
        "/auth/refresh": [200, keycloak_keys],
        "/oauth2/token": [200, ["access_token", "expires_in", "scope", "token_type"]],
    }
    cookies = {(c["name"], c["path"]) for c in page.context.cookies()}
    assert cookies == {(COOKIE, REFRESH_PATH), (COOKIE, "/auth/refresh")}

    # The same calls from a page on an origin the API does not list: every one is blocked
    # (its logins never reach a session: the Origin check refuses them too).
    stranger = page.context.new_page()
    stranger.goto(f"{origins.unlisted}/attack.html")
    refused = stranger.evaluate(CALL_EACH_ENDPOINT, arguments)
    assert refused == dict.fromkeys(answered, "blocked: TypeError")
    stranger.close()
