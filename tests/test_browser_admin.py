"""The admin's API-key workflow in a real browser: issue, rotate and revoke.

Debian's Chromium, driven by Playwright, works the admin as an operator would: it signs in,
issues a key from the API keys list, copies the secret shown once, rotates the secret and
revokes the key from the key's page, rotates and revokes two keys at once with the list's
actions, and checks that a staff user without the app's permissions is kept out. The client
side is played by PyJWT and ``requests``: it signs assertions with the copied secrets, sends
them to ``POST /auth/api-key`` and presents the tokens to ``GET /api/me``.

Rows are created before the browser starts and outcomes are checked over HTTP (see the
``browser`` fixture in ``tests/browser.py``). Chromium is expected at ``/usr/bin/chromium``;
without it these tests fail, unless ``DJANGO_TOKENS_SKIP_BROWSER=1`` asks for them to be
skipped.

Screenshots of the list, the issue form and the secret page (masked) go to ``tmp_path``; with
``DJANGO_TOKENS_WRITE_DOCS_SCREENSHOTS=1`` they are also copied into ``docs/`` for the README.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from django_tokens import api_keys
from django_tokens.conf import token_settings
from tests.browser import (
    ADMIN_INDEX,
    CLOSE,
    SKIP_IF_ASKED,
    VIEWPORT,
    Account,
    admin_log_in,
    assert_accessible_basics,
    assert_no_store,
    assert_secrets_absent,
    browser_fixture,  # noqa: F401 (a fixture: pytest finds it here)
    copy_to_docs,
    fresh_page,
    issuer_fixture,  # noqa: F401 (a fixture)
    page_text,
    path_of,
    run_action,
    screenshot,
    submit,
)

with contextlib.suppress(ImportError):  # reported by the ``browser`` fixture
    from playwright.sync_api import Browser, Locator, Page, expect

pytestmark = SKIP_IF_ASKED

CHANGELIST = "/admin/django_tokens/apikey/"
ADD = f"{CHANGELIST}add/"
#: Screenshot name in ``tmp_path`` -> the copy in ``docs/``.
DOCS_SCREENSHOTS = {
    "list.png": "admin-api-keys-list.png",
    "issue.png": "admin-api-key-issue.png",
    "secret.png": "admin-api-key-secret.png",
}

OWNER = "alice"  # the ``user`` fixture
ISSUED_NAME = "release-pipeline"
BULK_NAMES = ("nightly-backup", "metrics-exporter")
ROTATE_ACTION = "Rotate the secrets of selected API keys"
REVOKE_ACTION = "Revoke selected API keys and their sessions"
CREDENTIALS_REFUSED = {"error": "invalid_credentials", "message": "Missing or invalid credentials"}


# -- rows made before the browser starts ------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """An API key as the test knows it: plain values, read without the ORM."""

    pk: int
    key_id: str
    name: str
    secret: str = field(repr=False)

    @property
    def label(self) -> str:
        """The key as the admin names it (``str(ApiKey)``)."""
        return f"{self.name} ({self.key_id})"


@dataclass(frozen=True)
class Rows:
    superuser: Account
    staff: Account
    bulk: tuple[Key, ...]


# -- the client's side ------------------------------------------------------------------------


def assertion(key_id: str, secret: str) -> str:
    """An assertion as a client script signs it (``examples/api_key_client.py``)."""
    now = int(time.time())
    claims = {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id})


def exchange(base_url: str, key_id: str, secret: str) -> requests.Response:
    headers = {**CLOSE, "Authorization": f"Bearer {assertion(key_id, secret)}"}
    return requests.post(f"{base_url}/auth/api-key", headers=headers, timeout=10)


def accepted(base_url: str, key_id: str, secret: str) -> dict[str, Any]:
    response = exchange(base_url, key_id, secret)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["access_token"], body
    assert body["scope"].split() == list(token_settings.API_KEY_SCOPES), body
    return body


def refused(base_url: str, key_id: str, secret: str) -> None:
    response = exchange(base_url, key_id, secret)
    assert response.status_code == 401, response.text
    assert response.json() == CREDENTIALS_REFUSED


def get_me(base_url: str, access_token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}", **CLOSE}
    return requests.get(f"{base_url}/api/me", headers=headers, timeout=10)


# -- the browser's side -----------------------------------------------------------------------


def secret_field(page: Page, key_id: str) -> Locator:
    """The read-only input that shows a key's new secret."""
    field = page.get_by_label(f"Secret of {key_id}", exact=True)
    expect(field).to_have_count(1)
    expect(field).to_have_class(re.compile(r"(^|\s)secret(\s|$)"))
    expect(field).not_to_be_editable()
    return field


def shown_secrets(page: Page) -> dict[str, str]:
    """Key id -> secret, for every row of the page that shows new secrets."""
    key_ids = page.locator("#issued-secrets tbody code.key-id").all_inner_texts()
    found = {key_id: secret_field(page, key_id).input_value() for key_id in key_ids}
    assert all(len(secret) == 64 for secret in found.values()), "a secret is not 64 characters"
    return found


def dangling_references(page: Page) -> list[str]:
    """Every ``aria-describedby`` or ``aria-labelledby`` id that names no element of the page
    (the description or label it promises is then never announced)."""
    found: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll("[aria-describedby], [aria-labelledby]"))
            .flatMap((el) => ["aria-describedby", "aria-labelledby"]
                .flatMap((name) => (el.getAttribute(name) || "").split(/\\s+/)
                    .filter((id) => id && !document.getElementById(id))
                    .map((id) => `${name}="${id}" on <${el.localName} id="${el.id}">`)))"""
    )
    return [f"{path_of(page)}: {reference}" for reference in found]


def select_keys(page: Page, keys: tuple[Key, ...]) -> None:
    for key in keys:
        name = f"Select this object for an action - {key.label}"
        page.get_by_role("checkbox", name=name, exact=True).check()


def key_row(page: Page, key_id: str) -> Locator:
    """The key's row in the API keys list."""
    return page.locator("#result_list tbody tr").filter(has_text=key_id)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def rows(django_user_model: Any, user: Any) -> Rows:
    """A superuser, a staff user without any permission, and two keys of ``user``."""
    superuser = Account("root", "root-password")
    staff = Account("clerk", "clerk-password")
    django_user_model.objects.create_superuser(
        username=superuser.username, email="root@example.com", password=superuser.password
    )
    django_user_model.objects.create_user(
        username=staff.username, password=staff.password, is_staff=True
    )
    bulk = []
    for name in BULK_NAMES:
        issued = api_keys.issue(user, name=name)
        bulk.append(Key(issued.api_key.pk, issued.api_key.key_id, name, issued.secret))
    return Rows(superuser, staff, tuple(bulk))


@pytest.fixture
def page(rows: Rows, issuer: str, browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies), opened once the rows exist."""
    with fresh_page(browser, viewport=VIEWPORT) as page:
        yield page


# -- tests ------------------------------------------------------------------------------------


def test_issue_use_rotate_and_revoke_a_key(
    page: Page, rows: Rows, issuer: str, tmp_path: Path
) -> None:
    admin_log_in(page, issuer, rows.superuser)
    page.get_by_role("link", name="API keys", exact=True).click()
    page.wait_for_url(f"{issuer}{CHANGELIST}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Select API key to change")
    # The navigation sidebar stays closed from here on (the admin keeps that in localStorage),
    # which leaves the screenshots room for the list's columns.
    page.get_by_role("button", name="Toggle navigation").click()

    # Issue: the form, then the page that shows the secret once.
    page.get_by_role("link", name="Add API key").click()
    page.wait_for_url(f"{issuer}{ADD}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Issue an API key")
    assert_accessible_basics(page)
    expect(page.get_by_label("Scopes")).to_have_value(" ".join(token_settings.API_KEY_SCOPES))
    page.get_by_label("Owner").fill(OWNER)
    page.get_by_label("Name").fill(ISSUED_NAME)
    page.get_by_label("Expires in (days)").fill("30")
    screenshot(page, tmp_path / "issue.png")

    issued_response = submit(page, "Issue key", ADD)

    assert issued_response.status == 200
    assert_no_store(issued_response)
    expect(page.get_by_role("heading", level=1)).to_have_text("API key issued")
    assert path_of(page) == ADD, page.url
    assert_accessible_basics(page)
    shown = shown_secrets(page)
    assert len(shown) == 1, shown
    ((key_id, secret),) = shown.items()
    assert key_id.startswith(token_settings.API_KEY_ID_PREFIX), key_id
    screenshot(page, tmp_path / "secret.png", mask=[secret_field(page, key_id)])

    first = accepted(issuer, key_id, secret)
    assert get_me(issuer, first["access_token"]).status_code == 200

    # The secret is shown nowhere else: not in the list, the key's page or its history.
    page.get_by_role("link", name="Done").click()
    page.wait_for_url(f"{issuer}{CHANGELIST}")
    row = key_row(page, key_id)
    expect(row).to_have_count(1)
    expect(row.locator("td.field-owner")).to_have_text(OWNER)
    expect(row.locator("td.field-state")).to_have_text("live")
    screenshot(page, tmp_path / "list.png")
    copy_to_docs(tmp_path, DOCS_SCREENSHOTS)
    assert_secrets_absent(page, secret)
    page.get_by_role("link", name=ISSUED_NAME, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change API key")
    change_path = path_of(page)
    key_path = change_path.removesuffix("change/")
    assert_secrets_absent(page, secret)
    page.get_by_role("link", name="History").click()
    page.wait_for_url(f"{issuer}{key_path}history/")
    assert_secrets_absent(page, secret)

    # Rotate with no grace period: only the new secret works.
    page.goto(f"{issuer}{change_path}")
    page.get_by_role("link", name="Rotate secret").click()
    page.wait_for_url(f"{issuer}{key_path}rotate/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Rotate secrets")
    assert_accessible_basics(page)
    page.get_by_label("Grace period (seconds)").fill("0")

    rotated_response = submit(page, "Rotate", f"{key_path}rotate/")

    assert rotated_response.status == 200
    assert_no_store(rotated_response)
    expect(page.get_by_role("heading", level=1)).to_have_text("New secrets")
    assert_accessible_basics(page)
    rotated = shown_secrets(page)
    assert set(rotated) == {key_id}, rotated
    new_secret = rotated[key_id]
    assert new_secret != secret
    refused(issuer, key_id, secret)
    second = accepted(issuer, key_id, new_secret)
    for path in (ADMIN_INDEX, CHANGELIST, change_path):
        page.goto(f"{issuer}{path}")
        assert_secrets_absent(page, secret, new_secret)

    # Revoke: the key's sessions end with it.
    for tokens in (first, second):
        assert get_me(issuer, tokens["access_token"]).status_code == 200
    page.get_by_role("link", name="Revoke", exact=True).click()
    page.wait_for_url(f"{issuer}{key_path}revoke/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke API key")
    assert_accessible_basics(page)

    submit(page, "Yes, revoke", f"{key_path}revoke/")

    page.wait_for_url(f"{issuer}{change_path}")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        "1 key(s) and 2 session(s) revoked."
    )
    expect(page.get_by_role("link", name="Rotate secret")).to_have_count(0)
    expect(page.get_by_role("link", name="Revoke", exact=True)).to_have_count(0)
    for tokens in (first, second):
        assert get_me(issuer, tokens["access_token"]).status_code == 401
    refused(issuer, key_id, new_secret)
    page.goto(f"{issuer}{key_path}rotate/")
    page.wait_for_url(f"{issuer}{change_path}")
    expect(page.locator("ul.messagelist li.error")).to_have_text("This key is revoked or expired.")
    page.goto(f"{issuer}{CHANGELIST}")
    expect(key_row(page, key_id).locator("td.field-state")).to_have_text("revoked")


def test_rotate_then_revoke_two_keys_with_the_list_actions(
    page: Page, rows: Rows, issuer: str
) -> None:
    first, second = rows.bulk
    admin_log_in(page, issuer, rows.superuser)
    page.goto(f"{issuer}{CHANGELIST}")
    select_keys(page, rows.bulk)

    run_action(page, ROTATE_ACTION, CHANGELIST)

    expect(page.get_by_role("heading", level=1)).to_have_text("Rotate secrets")
    assert_accessible_basics(page)
    for key in rows.bulk:
        expect(page.locator("#content-main li").filter(has_text=key.key_id)).to_have_count(1)
    page.get_by_label("Grace period (seconds)").fill("60")

    rotated_response = submit(page, "Rotate", CHANGELIST)

    assert rotated_response.status == 200
    assert_no_store(rotated_response)
    expect(page.get_by_role("heading", level=1)).to_have_text("New secrets")
    rotated = shown_secrets(page)
    assert set(rotated) == {first.key_id, second.key_id}, rotated
    grace_ends = page.locator("#issued-secrets tbody td:nth-child(5)").all_inner_texts()
    assert len(grace_ends) == 2, grace_ends
    assert "—" not in grace_ends, grace_ends
    sessions = []
    for key in rows.bulk:
        assert rotated[key.key_id] != key.secret
        # Within the grace period the old secret still works beside the new one.
        sessions.append(accepted(issuer, key.key_id, key.secret))
        sessions.append(accepted(issuer, key.key_id, rotated[key.key_id]))

    page.get_by_role("link", name="Done").click()
    page.wait_for_url(f"{issuer}{CHANGELIST}")
    assert_secrets_absent(page, *rotated.values())
    select_keys(page, rows.bulk)

    run_action(page, REVOKE_ACTION, CHANGELIST)

    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke API keys")
    assert_accessible_basics(page)
    submit(page, "Yes, revoke", CHANGELIST)
    page.wait_for_url(f"{issuer}{CHANGELIST}")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        "2 key(s) and 4 session(s) revoked."
    )
    for key in rows.bulk:
        expect(key_row(page, key.key_id).locator("td.field-state")).to_have_text("revoked")
        refused(issuer, key.key_id, rotated[key.key_id])
    for tokens in sessions:
        assert get_me(issuer, tokens["access_token"]).status_code == 401


def test_staff_without_permissions_cannot_reach_api_keys(
    page: Page, rows: Rows, issuer: str
) -> None:
    admin_log_in(page, issuer, rows.staff)

    expect(page.get_by_role("link", name="API keys")).to_have_count(0)
    key_path = f"{CHANGELIST}{rows.bulk[0].pk}/"
    for path in (CHANGELIST, ADD, f"{key_path}change/", f"{key_path}rotate/", f"{key_path}revoke/"):
        response = page.goto(f"{issuer}{path}")
        assert response is not None
        assert response.status == 403, f"GET {path}: {response.status} {page_text(page.content())}"


def test_form_errors_and_help_texts_are_announced(page: Page, rows: Rows, issuer: str) -> None:
    admin_log_in(page, issuer, rows.superuser)
    page.goto(f"{issuer}{ADD}")
    page.get_by_label("Owner").fill("nobody")
    page.get_by_label("Name").fill(ISSUED_NAME)

    answer = submit(page, "Issue key", ADD)

    assert answer.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Issue an API key")
    owner = page.get_by_label("Owner")
    expect(owner).to_have_value("nobody")
    expect(owner).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_owner_error")).to_have_text("No user has that username.")
    dangling = dangling_references(page)
    page.goto(f"{issuer}{CHANGELIST}")
    expect(page.locator("#result_list tbody tr")).to_have_count(len(rows.bulk))
    page.goto(f"{issuer}{CHANGELIST}{rows.bulk[0].pk}/rotate/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Rotate secrets")
    dangling += dangling_references(page)
    assert dangling == [], f"references to missing elements: {dangling}"
    expect(page.get_by_label("Grace period (seconds)")).to_have_accessible_description(
        "How long the current secret keeps working beside the new one."
    )
    page.goto(f"{issuer}{ADD}")
    expect(page.get_by_label("Owner")).to_have_accessible_description(
        "The username of the key's owner."
    )
    expect(page.get_by_label("Expires in (days)")).to_have_accessible_description(
        "Empty: the key does not expire."
    )
