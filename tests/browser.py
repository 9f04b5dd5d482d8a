"""What the real-browser tests share: Debian's Chromium driven by Playwright's sync API.

Chromium is expected at ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run``
installs it). Without it the ``browser`` fixture fails, unless ``DJANGO_TOKENS_SKIP_BROWSER=1``
asks for the browser tests to be skipped (``SKIP_IF_ASKED``, each module's ``pytestmark``).

A test module imports the fixtures it uses (``browser_fixture`` for ``browser``,
``issuer_fixture`` for ``issuer``), so that pytest finds them in its namespace.

Shared here besides: ``fresh_page`` (a new profile in US English), ``submit`` (click and
check that the server took the POST), ``page_text``, ``assert_accessible_basics``, ``CLOSE``
(no keep-alive for ``requests``), and for the admin's tests an ``Account`` to sign in with
(``admin_log_in``), ``path_of``, ``assert_no_store``, ``assert_secrets_absent``,
``run_action`` (a change list's action), ``screenshot`` (in ``VIEWPORT``, or ``WIDE``) and
``copy_to_docs`` (the README's screenshots, copied into ``docs/`` only when
``DJANGO_TOKENS_WRITE_DOCS_SCREENSHOTS=1``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import override_settings

try:
    from playwright.sync_api import Browser, Locator, Page, Response, expect, sync_playwright
except ImportError as exc:  # reported by the ``browser`` fixture
    PLAYWRIGHT_IMPORT_ERROR: ImportError | None = exc
else:
    PLAYWRIGHT_IMPORT_ERROR = None

CHROMIUM = Path("/usr/bin/chromium")
SKIP_VARIABLE = "DJANGO_TOKENS_SKIP_BROWSER"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SKIP_IF_ASKED = pytest.mark.skipif(
    os.environ.get(SKIP_VARIABLE) == "1", reason=f"{SKIP_VARIABLE}=1: browser tests skipped"
)

#: Markup to drop when an error page is quoted in a failure message.
TAGS = re.compile(r"<(style|script)\b.*?</\1>|<[^>]+>", re.DOTALL)
#: No keep-alive: the live server's request threads close their database connections as soon
#: as each response is sent.
CLOSE = {"Connection": "close"}

ADMIN_LOGIN = "/admin/login/"
ADMIN_INDEX = "/admin/"
#: The admin's action button: "Go" up to Django 5.2, "Run" from Django 6.0.
RUN_ACTION = re.compile(r"^(Go|Run)$")
#: The browser window of the admin's tests.
VIEWPORT = {"width": 1100, "height": 700}
#: The lists' screenshots: wide enough for the columns beside the filters.
WIDE = 1440
DOCS = Path(__file__).resolve().parent.parent / "docs"
WRITE_DOCS_VARIABLE = "DJANGO_TOKENS_WRITE_DOCS_SCREENSHOTS"


@dataclass(frozen=True)
class Account:
    username: str
    password: str = field(repr=False)


def page_text(html: str, limit: int = 300) -> str:
    """The words of an HTML page, for a failure message."""
    return " ".join(re.sub(TAGS, " ", html).split())[:limit]


@contextmanager
def fresh_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page in a fresh browser profile (no cookies), in US English."""
    context = browser.new_context(locale="en-US", **options)
    try:
        yield context.new_page()
    finally:
        context.close()


def submit(page: Page, button: str | re.Pattern[str], path: str) -> Response:
    """Click ``button`` and check that the server took the form posted to ``path``: a page
    (200) or a redirect (302), not an error page such as CSRF's 403. The POST's response."""
    with page.expect_response(
        lambda response: response.request.method == "POST" and urlsplit(response.url).path == path
    ) as posted:
        page.get_by_role("button", name=button, exact=True).click()
    response = posted.value
    if response.status not in (200, 302):
        pytest.fail(
            f"POST {path} answered {response.status}: {page_text(response.text())}", pytrace=False
        )
    return response


def assert_accessible_basics(page: Page) -> None:
    """A smoke test, not an audit: a document language, exactly one ``h1``, and a label
    (``<label for>``, a wrapping ``<label>``, ``aria-labelledby`` or ``aria-label``) for
    every control a person can fill in."""
    assert page.locator("html").get_attribute("lang"), "<html> has no lang attribute"
    expect(page.locator("h1")).to_have_count(1)
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll("input, select, textarea"))
            .filter((el) => !["hidden", "submit", "reset", "button", "image"].includes(el.type))
            .filter((el) => !(el.labels && el.labels.length)
                && !el.getAttribute("aria-labelledby")
                && !(el.getAttribute("aria-label") || "").trim())
            .map((el) => el.outerHTML)"""
    )
    assert unlabelled == [], f"controls without a label: {unlabelled}"


def admin_log_in(page: Page, base_url: str, account: Account) -> None:
    """Sign in on the admin's login page and land on its index."""
    page.goto(f"{base_url}{ADMIN_LOGIN}?next={ADMIN_INDEX}")
    page.get_by_label("Username").fill(account.username)
    page.get_by_label("Password").fill(account.password)
    submit(page, "Log in", ADMIN_LOGIN)
    page.wait_for_url(f"{base_url}{ADMIN_INDEX}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Site administration")


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def assert_no_store(response: Response) -> None:
    directives = [
        directive.strip().lower()
        for directive in response.headers.get("cache-control", "").split(",")
    ]
    assert "no-store" in directives, (
        f"{response.request.method} {urlsplit(response.url).path}: "
        f"Cache-Control {response.headers.get('cache-control')!r}"
    )


def assert_secrets_absent(page: Page, *secrets: str) -> None:
    html = page.content()
    for number, secret in enumerate(secrets, 1):
        assert secret not in html, f"secret #{number} appears on {page.url}"


def run_action(page: Page, action: str, path: str) -> None:
    """Run a change list's ``action`` on the selected rows; the list's form posts to ``path``."""
    page.get_by_label(re.compile(r"^Action:")).select_option(label=action)
    submit(page, RUN_ACTION, path)


def screenshot(
    page: Page, path: Path, mask: list[Locator] | None = None, *, wide: bool = False
) -> None:
    """The top of the page (clicks may have scrolled it); ``wide``: in a wider window."""
    if wide:
        page.set_viewport_size({"width": WIDE, "height": VIEWPORT["height"]})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(
        path=path, full_page=False, mask=mask or [], mask_color="#c8c8c8", animations="disabled"
    )
    if wide:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": VIEWPORT["height"]})


def copy_to_docs(tmp_path: Path, screenshots: dict[str, str]) -> None:
    """The README's screenshots (name in ``tmp_path`` -> name in ``docs/``), replaced only
    when asked for."""
    if os.environ.get(WRITE_DOCS_VARIABLE) != "1":
        return
    DOCS.mkdir(exist_ok=True)
    for name, docs_name in screenshots.items():
        shutil.copyfile(tmp_path / name, DOCS / docs_name)


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[Browser]:
    """Headless Chromium for one test.

    While it runs, Playwright's sync API keeps an asyncio loop marked as running in this
    thread. Django then refuses ORM calls here (``SynchronousOnlyOperation``), and switching
    that check off with ``DJANGO_ALLOW_ASYNC_UNSAFE`` is worse: the calls would run on a second,
    context-local database connection that nothing closes (PostgreSQL then cannot drop the
    test database). So the tests make no ORM calls while the browser runs: their rows are
    created first (by the fixtures their ``page`` fixture depends on), and the client checks
    the outcome over HTTP.
    """
    hint = f"install Debian's chromium package, or set {SKIP_VARIABLE}=1 to skip these tests"
    if PLAYWRIGHT_IMPORT_ERROR is not None:
        pytest.fail(f"Playwright cannot be imported ({PLAYWRIGHT_IMPORT_ERROR}); {hint}")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium is missing: no executable {CHROMIUM}; {hint}", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(name="issuer")
def issuer_fixture(live_server: Any) -> Iterator[str]:
    """Tokens name the live server as their issuer, as a deployment's ISSUER setting would."""
    with override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, "ISSUER": live_server.url}):
        yield live_server.url
