"""The admin's operations on sessions, signing keys, OAuth 2.0 applications and the audit trail,
in a real browser.

Debian's Chromium, driven by Playwright, works the admin as an operator would: it revokes a
user's session from the Sessions list, rotates the signing key and retires the old one early
(by force, since a session still holds a token it signed), adds an OAuth 2.0 application and
copies its client secret from the page that shows it once, replaces that secret, reads the
audit trail, and checks that a staff user without the app's permissions is kept out. The client
side is played by ``requests``, PyJWT and requests-oauthlib: they sign in at ``POST
/api/token``, refresh, fetch client-credentials tokens from ``POST /oauth2/token``, read the
served JWKS and present the tokens to ``GET /api/me``.

Rows are created before the browser starts and outcomes are checked over HTTP (see the
``browser`` fixture in ``tests/browser.py``). Chromium is expected at ``/usr/bin/chromium``;
without it these tests fail, unless ``DJANGO_TOKENS_SKIP_BROWSER=1`` asks for them to be
skipped.

Screenshots of the sessions list, the retire confirmation, the audit trail and the client
secret page (masked) go to ``tmp_path``; with ``DJANGO_TOKENS_WRITE_DOCS_SCREENSHOTS=1`` they
are also copied into ``docs/`` for the README.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from oauth2_provider.models import Application
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

from django_tokens import keystore
from django_tokens.conf import token_settings
from django_tokens.models import SigningKey
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

SESSIONS = "/admin/django_tokens/session/"
KEYS = "/admin/django_tokens/signingkey/"
ROTATE = f"{KEYS}rotate/"
AUDIT = "/admin/django_tokens/auditevent/"
APPLICATIONS = "/admin/oauth2_provider/application/"
APPLICATION_ADD = f"{APPLICATIONS}add/"

OWNER = "alice"  # the ``user`` fixture
OWNER_PASSWORD = "alice-password"
APP_NAME = "reporting-service"
#: The application made before the browser starts, and its secret (stored hashed).
KNOWN_APP_NAME = "nightly-export"
KNOWN_APP_SECRET = "known-client-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
CLIENT_SCOPES = ["profile", "read"]
REVOKE_SESSIONS_ACTION = "Revoke selected sessions"
#: How long a process may keep serving keys it loaded before it notices a change.
KEYSTORE_DELAY = float(token_settings.KEYSTORE_CHECK_INTERVAL) + 1.0


# -- rows made before the browser starts ------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    superuser: Account
    staff: Account
    #: The signing key that signs when the test starts.
    active_key_pk: int
    known_app_pk: int
    known_app_client_id: str


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: The session id the access token names (``sid``), as ``GET /api/me`` reports it.
    session: str


# -- the client's side ------------------------------------------------------------------------


def sign_in(base_url: str, username: str = OWNER, password: str = OWNER_PASSWORD) -> Tokens:
    """``POST /api/token`` as a script would; the session id comes from ``GET /api/me``."""
    response = requests.post(
        f"{base_url}/api/token",
        json={"username": username, "password": password},
        headers=CLOSE,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    me = get_me(base_url, body["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username
    return Tokens(body["access_token"], body["refresh_token"], me.json()["session"])


def get_me(base_url: str, access_token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}", **CLOSE}
    return requests.get(f"{base_url}/api/me", headers=headers, timeout=10)


def refresh(base_url: str, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{base_url}/api/token/refresh",
        json={"refresh_token": refresh_token},
        headers=CLOSE,
        timeout=10,
    )


def served_jwks(base_url: str) -> jwt.PyJWKSet:
    response = requests.get(f"{base_url}/.well-known/jwks.json", headers=CLOSE, timeout=10)
    assert response.status_code == 200, response.text
    return jwt.PyJWKSet.from_dict(response.json())


def served_kids(base_url: str) -> set[str]:
    return {str(key.key_id) for key in served_jwks(base_url).keys}


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def verified_claims(base_url: str, token: str) -> dict[str, Any]:
    """The token's claims, verified against the served JWKS as a resource server would."""
    key = served_jwks(base_url)[kid_of(token)]
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[token_settings.SIGNING_ALGORITHM],
        audience=token_settings.AUDIENCE,
        issuer=base_url,
    )
    return claims


def eventually(check: Callable[[], bool], what: str, timeout: float = KEYSTORE_DELAY) -> None:
    """Poll ``check`` until it holds: a process notices a keystore change within
    ``KEYSTORE_CHECK_INTERVAL`` (at once when the change is made in it, as here)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what}", pytrace=False)
        time.sleep(0.1)


def client_token(base_url: str, client_id: str, secret: str) -> dict[str, Any]:
    """A client-credentials token fetched as a backend service does, with requests-oauthlib
    (HTTP Basic client authentication)."""
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    session.headers.update(CLOSE)
    token: dict[str, Any] = session.fetch_token(
        f"{base_url}/oauth2/token",
        client_id=client_id,
        client_secret=secret,
        include_client_id=False,
        scope=CLIENT_SCOPES,
    )
    return token


def client_credentials(base_url: str, client_id: str, secret: str) -> requests.Response:
    """The same request, without a library that raises on an error."""
    return requests.post(
        f"{base_url}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": " ".join(CLIENT_SCOPES)},
        auth=(client_id, secret),
        headers=CLOSE,
        timeout=10,
    )


def assert_client_accepted(base_url: str, client_id: str, secret: str) -> None:
    token = client_token(base_url, client_id, secret)
    assert token["token_type"].lower() == "bearer", token
    me = get_me(base_url, token["access_token"])
    assert me.status_code == 200, me.text
    assert me.json() == {"client_id": client_id, "scope": CLIENT_SCOPES}


def assert_client_refused(base_url: str, client_id: str, secret: str) -> None:
    response = client_credentials(base_url, client_id, secret)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client", response.text


# -- the browser's side -----------------------------------------------------------------------


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def open_from_index(page: Page, base_url: str, link: str, path: str) -> None:
    """Follow the index page's link to a model's list, and close the navigation sidebar
    (the admin keeps that in localStorage) to leave the screenshots room for the columns."""
    page.goto(f"{base_url}{ADMIN_INDEX}")
    page.get_by_role("link", name=link, exact=True).click()
    page.wait_for_url(f"{base_url}{path}")
    toggle = page.get_by_role("button", name="Toggle navigation")
    if toggle.get_attribute("aria-expanded") != "false":
        toggle.click()


def success_message(page: Page) -> Locator:
    message = page.locator("ul.messagelist li.success")
    expect(message).to_have_count(1)
    return message


def list_row(page: Page, text: str) -> Locator:
    """The row of the change list that shows ``text``."""
    row = page.locator("#result_list tbody tr").filter(has_text=text)
    expect(row).to_have_count(1)
    return row


def client_secret_field(page: Page) -> Locator:
    """The read-only input that shows an application's new client secret."""
    secret = page.get_by_label("Client secret", exact=True)
    expect(secret).to_have_count(1)
    expect(secret).not_to_be_editable()
    return secret


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def rows(django_user_model: Any, user: Any) -> Rows:
    """A superuser, a staff user without any permission, ``user`` (alice), the first signing
    keys, and an OAuth 2.0 application whose secret the test knows."""
    superuser = Account("root", "root-password")
    staff = Account("clerk", "clerk-password")
    django_user_model.objects.create_superuser(
        username=superuser.username, email="root@example.com", password=superuser.password
    )
    django_user_model.objects.create_user(
        username=staff.username, password=staff.password, is_staff=True
    )
    keystore.ensure_keys()
    application = Application.objects.create(
        name=KNOWN_APP_NAME,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=KNOWN_APP_SECRET,
    )
    return Rows(
        superuser,
        staff,
        SigningKey.objects.get(state=SigningKey.State.ACTIVE).pk,
        application.pk,
        application.client_id,
    )


@pytest.fixture
def page(rows: Rows, issuer: str, browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies), opened once the rows exist."""
    with fresh_page(browser, viewport=VIEWPORT) as page:
        yield page


@pytest.fixture
def alice(rows: Rows, issuer: str) -> tuple[Tokens, Tokens]:
    """Two sessions of alice, signed in over HTTP before the browser starts (a test lists
    this fixture before ``page``)."""
    return sign_in(issuer), sign_in(issuer)


@pytest.fixture
def oauth_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests-oauthlib refuses plain HTTP unless told otherwise; the live server speaks it."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


# -- tests ------------------------------------------------------------------------------------


def test_revoke_a_session_from_the_sessions_list(
    alice: tuple[Tokens, Tokens], page: Page, rows: Rows, issuer: str, tmp_path: Path
) -> None:
    chosen, spared = alice
    admin_log_in(page, issuer, rows.superuser)
    open_from_index(page, issuer, "Sessions", SESSIONS)
    expect(heading(page)).to_have_text("Select session to change")
    assert_accessible_basics(page)
    row = list_row(page, chosen.session)
    expect(row.locator("td.field-user")).to_have_text(OWNER)
    expect(row.locator("td.field-state")).to_have_text("live")
    row.get_by_role("checkbox").check()

    run_action(page, REVOKE_SESSIONS_ACTION, SESSIONS)

    expect(heading(page)).to_have_text("Revoke sessions")
    assert_accessible_basics(page)
    items = page.locator("#content-main ul li")
    expect(items).to_have_count(1)
    expect(items).to_contain_text(chosen.session)
    expect(items).to_contain_text(OWNER)
    # Nothing is revoked before the confirmation.
    assert get_me(issuer, chosen.access_token).status_code == 200

    submit(page, "Yes, revoke", SESSIONS)

    page.wait_for_url(f"{issuer}{SESSIONS}")
    expect(success_message(page)).to_have_text("1 session revoked.")
    expect(list_row(page, chosen.session).locator("td.field-state")).to_have_text("revoked")
    expect(list_row(page, spared.session).locator("td.field-state")).to_have_text("live")
    screenshot(page, tmp_path / "sessions.png", wide=True)
    copy_to_docs(tmp_path, {"sessions.png": "admin-sessions.png"})
    assert_secrets_absent(page, chosen.access_token, chosen.refresh_token)

    me = get_me(issuer, chosen.access_token)
    assert me.status_code == 401, me.text
    refreshed = refresh(issuer, chosen.refresh_token)
    assert refreshed.status_code == 401, refreshed.text
    # The other session of the same user goes on.
    assert get_me(issuer, spared.access_token).status_code == 200
    assert refresh(issuer, spared.refresh_token).status_code == 200


def test_rotate_the_signing_key_then_retire_the_old_one_by_force(
    alice: tuple[Tokens, Tokens], page: Page, rows: Rows, issuer: str, tmp_path: Path
) -> None:
    before = alice[0]
    old_kid = kid_of(before.access_token)
    published = served_kids(issuer)  # the active key and the pre-published next one
    assert len(published) == 2, published
    assert old_kid in published, published
    admin_log_in(page, issuer, rows.superuser)
    open_from_index(page, issuer, "Signing keys", KEYS)
    expect(list_row(page, old_kid).locator("td.field-state")).to_have_text("active")
    assert_accessible_basics(page)

    # Rotate: the confirmation, then the list with the new active key.
    page.get_by_role("link", name="Rotate now", exact=True).click()
    page.wait_for_url(f"{issuer}{ROTATE}")
    expect(heading(page)).to_have_text("Rotate the signing key")
    assert_accessible_basics(page)
    expect(page.get_by_label("Algorithm")).to_have_value(token_settings.SIGNING_ALGORITHM)
    assert served_kids(issuer) == published, "nothing changes before the confirmation"

    submit(page, "Rotate now", ROTATE)

    page.wait_for_url(f"{issuer}{KEYS}")
    rotated = success_message(page).inner_text()
    found = re.fullmatch(r"Rotated\. Active key: (\S+); next key: (\S+)\.", rotated)
    assert found, rotated
    new_kid, next_kid = found.groups()
    assert published == {old_kid, new_kid}, "the key now active was published as next"
    assert next_kid not in published, rotated
    expect(list_row(page, old_kid).locator("td.field-state")).to_have_text("retiring")
    expect(list_row(page, new_kid).locator("td.field-state")).to_have_text("active")
    expect(list_row(page, next_kid).locator("td.field-state")).to_have_text("next")
    eventually(
        lambda: served_kids(issuer) == {old_kid, new_kid, next_kid},
        "the JWKS publishes the retiring, active and next keys",
    )
    after = sign_in(issuer)
    assert kid_of(after.access_token) == new_kid
    assert verified_claims(issuer, after.access_token)["sid"] == after.session
    assert verified_claims(issuer, before.access_token)["sid"] == before.session
    assert get_me(issuer, before.access_token).status_code == 200

    # Retire the old key: its page offers it, the confirmation says what breaks.
    list_row(page, old_kid).get_by_role("link", name=old_kid, exact=True).click()
    expect(heading(page)).to_have_text("View signing key")
    key_path = path_of(page).removesuffix("change/")
    retire_path = f"{key_path}retire/"
    page.get_by_role("link", name="Retire", exact=True).click()
    page.wait_for_url(f"{issuer}{retire_path}")
    expect(heading(page)).to_have_text("Retire signing key")
    assert_accessible_basics(page)
    question = page.locator("#content-main > p").first
    expect(question).to_contain_text("Retire this key? It leaves the JWKS")
    expect(question).to_contain_text(
        re.compile(r"\b[1-9]\d* session\(s\) and 0 OAuth 2\.0 token\(s\) hold tokens it signed")
    )
    expect(page.locator("#content-main ul li")).to_have_text(f"{old_kid} (RS256, retiring)")
    force = page.get_by_role("checkbox", name=re.compile(r"^Retire it anyway:?$"))
    expect(force).not_to_be_checked()
    expect(force).to_have_accessible_description(
        "Tokens it signed that are still valid stop working at once."
    )
    screenshot(page, tmp_path / "retire.png")
    copy_to_docs(tmp_path, {"retire.png": "admin-signing-key-retire.png"})
    posts: list[str] = []
    page.on(
        "request",
        lambda request: posts.append(request.url) if request.method == "POST" else None,
    )

    # Unticked, the browser keeps the form (the box is required) ...
    page.get_by_role("button", name="Retire by force", exact=True).click()
    assert force.evaluate("(box) => box.validity.valueMissing") is True
    assert path_of(page) == retire_path
    # ... and the server, when a client skips that check, answers with the field's error.
    page.locator("#content-main form").evaluate("(form) => { form.noValidate = true; }")
    refused_response = submit(page, "Retire by force", retire_path)

    assert refused_response.status == 200
    assert len(posts) == 1, posts
    expect(heading(page)).to_have_text("Retire signing key")
    expect(page.locator("#content-main .errorlist")).to_have_text("This field is required.")
    assert old_kid in served_kids(issuer)
    assert get_me(issuer, before.access_token).status_code == 200

    force.check()
    submit(page, "Retire by force", retire_path)

    page.wait_for_url(f"{issuer}{KEYS}")
    expect(success_message(page)).to_have_text(f"Retired {old_kid}.")
    expect(list_row(page, old_kid).locator("td.field-state")).to_have_text("retired")
    eventually(
        lambda: get_me(issuer, before.access_token).status_code == 401,
        "GET /api/me refuses the access token the retired key signed",
    )
    eventually(
        lambda: served_kids(issuer) == {new_kid, next_kid}, "the retired key leaves the JWKS"
    )
    assert get_me(issuer, after.access_token).status_code == 200
    assert verified_claims(issuer, after.access_token)["sid"] == after.session
    # The retired key's page offers no second retirement, and its URL refuses one.
    page.goto(f"{issuer}{key_path}change/")
    expect(page.get_by_role("link", name="Retire", exact=True)).to_have_count(0)
    page.goto(f"{issuer}{retire_path}")
    page.wait_for_url(f"{issuer}{key_path}change/")
    expect(page.locator("ul.messagelist li.error")).to_have_text(
        "Only a retiring key can be retired: rotate the keys first."
    )


def test_add_an_application_whose_secret_is_shown_once_then_replace_it(
    page: Page, rows: Rows, issuer: str, tmp_path: Path, oauth_over_http: None
) -> None:
    admin_log_in(page, issuer, rows.superuser)
    open_from_index(page, issuer, "Applications", APPLICATIONS)
    page.get_by_role("link", name="Add application").click()
    page.wait_for_url(f"{issuer}{APPLICATION_ADD}")
    expect(heading(page)).to_have_text("Add application")
    assert_accessible_basics(page)
    expect(page.locator("[name=client_secret]")).to_have_count(0)
    expect(page.get_by_label("Client secret", exact=True)).to_have_count(0)
    page.get_by_label(re.compile(r"^Name:?$")).fill(APP_NAME)
    page.get_by_role("radio", name="Confidential", exact=True).check()
    page.get_by_role("radio", name="Client credentials", exact=True).check()

    added = submit(page, re.compile(r"^Save$"), APPLICATION_ADD)

    assert added.status == 200
    assert_no_store(added)
    expect(heading(page)).to_have_text("Application added")
    assert_accessible_basics(page)
    client_id = page.locator("#client-credentials code.client-id").inner_text()
    secret = client_secret_field(page).input_value()
    assert client_id
    assert len(secret) >= 32, "a short client secret"
    screenshot(page, tmp_path / "secret.png", mask=[client_secret_field(page)])
    copy_to_docs(tmp_path, {"secret.png": "admin-application-secret.png"})

    assert_client_accepted(issuer, client_id, secret)

    # The secret is shown nowhere else: not on the application's page or in the list.
    page.get_by_role("link", name="Done").click()
    expect(heading(page)).to_have_text("Change application")
    change_path = path_of(page)
    app_path = change_path.removesuffix("change/")
    assert_secrets_absent(page, secret)
    expect(page.locator("[name=client_secret]")).to_have_count(0)
    page.goto(f"{issuer}{APPLICATIONS}")
    expect(list_row(page, APP_NAME).locator("td.field-client_type")).to_have_text("Confidential")
    assert_secrets_absent(page, secret)

    # A new secret: asked first, then shown once; only the new one works.
    page.goto(f"{issuer}{change_path}")
    page.get_by_role("link", name="New client secret").click()
    page.wait_for_url(f"{issuer}{app_path}new-secret/")
    expect(heading(page)).to_have_text("New client secret")
    assert_accessible_basics(page)
    expect(page.locator("#content-main ul li")).to_have_text(f"{APP_NAME} ({client_id})")
    assert_client_accepted(issuer, client_id, secret)

    replaced = submit(page, "Replace the secret", f"{app_path}new-secret/")

    assert replaced.status == 200
    assert_no_store(replaced)
    expect(heading(page)).to_have_text("New client secret")
    assert_accessible_basics(page)
    expect(page.locator("#client-credentials code.client-id")).to_have_text(client_id)
    new_secret = client_secret_field(page).input_value()
    assert new_secret != secret
    assert_client_accepted(issuer, client_id, new_secret)
    assert_client_refused(issuer, client_id, secret)
    for path in (change_path, APPLICATIONS, f"{app_path}history/"):
        page.goto(f"{issuer}{path}")
        assert_secrets_absent(page, secret, new_secret)


def test_audit_trail_names_the_staff_user_and_is_read_only(
    alice: tuple[Tokens, Tokens], page: Page, rows: Rows, issuer: str, tmp_path: Path
) -> None:
    tokens = alice[0]
    admin_log_in(page, issuer, rows.superuser)

    # Three operations: revoke a session, rotate the signing key, replace a client secret.
    page.goto(f"{issuer}{SESSIONS}")
    list_row(page, tokens.session).get_by_role("checkbox").check()
    run_action(page, REVOKE_SESSIONS_ACTION, SESSIONS)
    submit(page, "Yes, revoke", SESSIONS)
    page.wait_for_url(f"{issuer}{SESSIONS}")
    expect(success_message(page)).to_have_text("1 session revoked.")
    page.goto(f"{issuer}{ROTATE}")
    submit(page, "Rotate now", ROTATE)
    page.wait_for_url(f"{issuer}{KEYS}")
    new_secret_path = f"{APPLICATIONS}{rows.known_app_pk}/new-secret/"
    page.goto(f"{issuer}{new_secret_path}")
    submit(page, "Replace the secret", new_secret_path)
    new_secret = client_secret_field(page).input_value()
    secrets = (KNOWN_APP_SECRET, new_secret, tokens.access_token, tokens.refresh_token)

    open_from_index(page, issuer, "Audit trail entries", AUDIT)
    expect(heading(page)).to_have_text("Select audit event to view")
    assert_accessible_basics(page)
    staff_user = rows.superuser.username
    entries = page.locator("#result_list tbody tr")
    expect(entries).to_have_count(5)
    for action, who, count in (
        ("tokens issued", OWNER, len(alice)),  # a sign-in is the user's own doing
        ("session revoked", staff_user, 1),
        ("signing key rotated", staff_user, 1),
        ("client secret issued", staff_user, 1),
    ):
        found = entries.filter(has_text=action)
        expect(found.locator("td.field-actor")).to_have_text([who] * count)
        expect(found.locator("td.field-ip")).to_have_text(["127.0.0.1"] * count)
    expect(list_row(page, "session revoked").locator("td.field-username")).to_have_text(OWNER)
    expect(list_row(page, "client secret issued").locator("td.field-client_id")).to_have_text(
        rows.known_app_client_id
    )
    expect(page.get_by_role("link", name=re.compile(r"^Add\b"))).to_have_count(0)
    expect(
        page.locator("select[name=action] option").filter(has_text=re.compile("delete", re.I))
    ).to_have_count(0)
    screenshot(page, tmp_path / "audit.png", wide=True)
    copy_to_docs(tmp_path, {"audit.png": "admin-audit-trail.png"})
    assert_secrets_absent(page, *secrets)

    # An entry's page shows it and offers nothing to change or delete.
    list_row(page, "client secret issued").get_by_role("link").first.click()
    expect(heading(page)).to_have_text("View audit event")
    assert_accessible_basics(page)
    expect(
        page.locator(
            "#content-main input:not([type=hidden]), #content-main select, "
            "#content-main textarea, #content-main button"
        )
    ).to_have_count(0)
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)
    expect(page.locator("#content-main .field-actor .readonly")).to_have_text(
        rows.superuser.username
    )
    expect(page.locator("#content-main .field-detail .readonly")).to_contain_text("replaced")
    assert_secrets_absent(page, *secrets)
    entry_path = path_of(page).removesuffix("change/")
    page.get_by_role("link", name="History").click()
    page.wait_for_url(f"{issuer}{entry_path}history/")
    assert_secrets_absent(page, *secrets)
    # Nor does its URL let anyone delete it.
    response = page.goto(f"{issuer}{entry_path}delete/")
    assert response is not None
    assert response.status == 403, f"GET delete/: {response.status}"


def test_staff_without_permissions_cannot_reach_the_operations(
    page: Page, rows: Rows, issuer: str
) -> None:
    admin_log_in(page, issuer, rows.staff)

    for link in ("Sessions", "Signing keys", "Audit trail entries", "Applications"):
        expect(page.get_by_role("link", name=link)).to_have_count(0)
    for path in (
        SESSIONS,
        KEYS,
        ROTATE,
        f"{KEYS}{rows.active_key_pk}/retire/",
        f"{APPLICATIONS}{rows.known_app_pk}/new-secret/",
        AUDIT,
    ):
        response = page.goto(f"{issuer}{path}")
        assert response is not None
        assert response.status == 403, f"GET {path}: {response.status} {page_text(page.content())}"
    # A POST with a valid CSRF token is refused too, and changes nothing.
    kids = served_kids(issuer)
    (csrf_token,) = [c["value"] for c in page.context.cookies() if c["name"] == "csrftoken"]
    rotate = page.request.post(
        f"{issuer}{ROTATE}",
        form={"post": "yes", "algorithm": token_settings.SIGNING_ALGORITHM},
        headers={"X-CSRFToken": csrf_token},
    )
    assert rotate.status == 403, rotate.status
    assert "CSRF" not in rotate.text(), page_text(rotate.text())
    assert served_kids(issuer) == kids
