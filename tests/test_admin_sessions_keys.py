"""The admin's sessions (revoke with a confirmation step), signing keys (rotate now) and users
(their API keys inline; revoke all their credentials)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from oauth2_provider.models import RefreshToken as DOTRefreshToken

from django_tokens import api_keys, keystore, sessions
from django_tokens.models import ApiKey, Session, SigningKey

pytestmark = pytest.mark.django_db

SESSIONS = reverse("admin:django_tokens_session_changelist")
KEYS = reverse("admin:django_tokens_signingkey_changelist")
ROTATE = reverse("admin:django_tokens_signingkey_rotate")


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def start(user: Any) -> Session:
    session: Session = sessions.start(user, service=Session.Service.PASSWORD).session
    return session


def test_session_list_shows_state_and_last_refresh(admin: Client, user: Any) -> None:
    live = start(user)
    revoked = start(user)
    sessions.revoke_session(revoked.pk)

    page = admin.get(SESSIONS)

    assert page.status_code == 200
    text = page.content.decode()
    assert str(live.pk) in text
    assert "live" in text
    assert "revoked" in text
    assert "Last refresh" in text


def test_revoking_sessions_asks_first_then_revokes_marks_and_logs(admin: Client, user: Any) -> None:
    chosen = [start(user), start(user)]
    untouched = start(user)
    selection = {"action": "revoke_selected", "_selected_action": [str(s.pk) for s in chosen]}

    asked = admin.post(SESSIONS, selection)

    assert asked.status_code == 200
    assert b"Yes, revoke" in asked.content
    assert not Session.objects.filter(revoked_at__isnull=False).exists()

    done = admin.post(SESSIONS, {**selection, "post": "yes"})

    assert done.status_code == 302
    for session in chosen:
        session.refresh_from_db()
        assert session.revoked_at is not None
        assert session.revoke_reason == "admin"
        assert sessions.is_revoked({"sid": str(session.pk)})
    assert Session.objects.get(pk=untouched.pk).revoked_at is None
    assert not sessions.is_revoked({"sid": str(untouched.pk)})
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2


def test_rotate_now_asks_first_then_promotes_the_next_key(admin: Client) -> None:
    keystore.ensure_keys()
    active = SigningKey.objects.get(state=SigningKey.State.ACTIVE)
    pending = SigningKey.objects.get(state=SigningKey.State.NEXT)
    assert b"Rotate now" in admin.get(KEYS).content

    asked = admin.get(ROTATE)
    assert asked.status_code == 200
    assert SigningKey.objects.get(pk=active.pk).state == SigningKey.State.ACTIVE

    done = admin.post(ROTATE, {"post": "yes", "algorithm": pending.algorithm})

    assert done.status_code == 302
    assert SigningKey.objects.get(pk=pending.pk).state == SigningKey.State.ACTIVE
    assert SigningKey.objects.get(pk=active.pk).state == SigningKey.State.RETIRING
    entry = LogEntry.objects.get()
    assert entry.object_id == str(pending.pk)
    assert entry.change_message == "Rotated: this key is now active."


def test_rotate_now_refuses_an_unknown_algorithm(admin: Client) -> None:
    keystore.ensure_keys()
    before = set(SigningKey.objects.values_list("pk", "state"))

    response = admin.post(ROTATE, {"post": "yes", "algorithm": "HS256"})

    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert set(SigningKey.objects.values_list("pk", "state")) == before


def test_private_keys_never_reach_the_admin_pages(admin: Client) -> None:
    keystore.ensure_keys()
    key = SigningKey.objects.get(state=SigningKey.State.ACTIVE)
    page = admin.get(reverse("admin:django_tokens_signingkey_change", args=[key.pk]))
    assert page.status_code == 200
    assert key.encrypted_private_key.encode() not in page.content
    assert b"PRIVATE KEY" not in page.content
    assert key.kid.encode() in page.content


def test_staff_without_permissions_cannot_rotate_or_revoke(
    client: Client, django_user_model: Any, user: Any
) -> None:
    keystore.ensure_keys()
    session = start(user)
    staff = django_user_model.objects.create_user("staff", password="staff-pass-1", is_staff=True)
    client.force_login(staff)

    assert client.get(ROTATE).status_code == 403
    assert client.post(ROTATE, {"post": "yes", "algorithm": "RS256"}).status_code == 403
    assert client.get(SESSIONS).status_code == 403
    revoke = {"action": "revoke_selected", "_selected_action": [str(session.pk)], "post": "yes"}
    assert client.post(SESSIONS, revoke).status_code == 403
    assert Session.objects.get(pk=session.pk).revoked_at is None
    assert SigningKey.objects.filter(state=SigningKey.State.RETIRING).count() == 0


def retire_url(key: SigningKey) -> str:
    return reverse("admin:django_tokens_signingkey_retire", args=[key.pk])


def test_retiring_a_key_nothing_needs_asks_once_then_retires_and_logs(admin: Client) -> None:
    first = keystore.signing_key().kid
    keystore.rotate()
    key = SigningKey.objects.get(kid=first)
    change = admin.get(reverse("admin:django_tokens_signingkey_change", args=[key.pk]))
    assert retire_url(key) in change.content.decode()

    asked = admin.get(retire_url(key))
    assert "no valid token was signed by it" in asked.content.decode()
    assert 'name="force"' not in asked.content.decode()
    done = admin.post(retire_url(key), {"post": "yes"})

    assert done.status_code == 302
    assert SigningKey.objects.get(kid=first).state == SigningKey.State.RETIRED
    entry = LogEntry.objects.get(object_id=str(key.pk), action_flag=CHANGE)
    assert entry.get_change_message() == "Retired."


def test_retiring_a_key_valid_tokens_need_takes_the_force_box(admin: Client, user: Any) -> None:
    first = keystore.signing_key().kid
    start(user)
    keystore.rotate()
    key = SigningKey.objects.get(kid=first)

    asked = admin.get(retire_url(key))
    text = asked.content.decode()
    assert "1 session(s) and 0 OAuth 2.0 token(s) hold tokens it signed" in text
    assert 'name="force"' in text
    unticked = admin.post(retire_url(key), {"post": "yes"})
    assert unticked.status_code == 200
    assert "This field is required" in unticked.content.decode()
    assert SigningKey.objects.get(kid=first).state == SigningKey.State.RETIRING

    done = admin.post(retire_url(key), {"post": "yes", "force": "on"})

    assert done.status_code == 302
    assert SigningKey.objects.get(kid=first).state == SigningKey.State.RETIRED
    entry = LogEntry.objects.get(object_id=str(key.pk), action_flag=CHANGE)
    assert entry.get_change_message().startswith("Retired by force: 1 session(s)")


def test_the_active_key_offers_no_retirement(admin: Client) -> None:
    keystore.ensure_keys()
    active = SigningKey.objects.get(state=SigningKey.State.ACTIVE)
    change = admin.get(reverse("admin:django_tokens_signingkey_change", args=[active.pk]))
    assert retire_url(active) not in change.content.decode()

    refused = admin.post(retire_url(active), {"post": "yes", "force": "on"}, follow=True)

    assert "Only a retiring key can be retired" in refused.content.decode()
    assert SigningKey.objects.get(pk=active.pk).state == SigningKey.State.ACTIVE


def test_staff_without_permissions_cannot_retire(client: Client, django_user_model: Any) -> None:
    first = keystore.signing_key().kid
    keystore.rotate()
    key = SigningKey.objects.get(kid=first)
    staff = django_user_model.objects.create_user("staff", password="staff-pass-1", is_staff=True)
    client.force_login(staff)

    assert client.get(retire_url(key)).status_code == 403
    assert client.post(retire_url(key), {"post": "yes", "force": "on"}).status_code == 403
    assert SigningKey.objects.get(kid=first).state == SigningKey.State.RETIRING


def test_revoking_a_users_credentials_stops_sessions_keys_and_oauth_tokens(
    admin: Client, user: Any, django_user_model: Any
) -> None:
    other = django_user_model.objects.create_user("bob", password="bob-password-1")
    password_session = start(user)
    key = api_keys.issue(user, name="laptop").api_key
    key_session = sessions.start(user, service=Session.Service.API_KEY, api_key=key).session
    others_session = start(other)
    application = Application.objects.create(
        name="spa",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://spa.example/cb",
    )
    access = AccessToken.objects.create(
        user=user,
        application=application,
        token="a",
        scope="read",
        expires=timezone.now() + timedelta(hours=1),
    )
    DOTRefreshToken.objects.create(
        user=user, application=application, token="r", access_token=access
    )
    users = reverse("admin:auth_user_changelist")
    selection = {"action": "revoke_credentials", "_selected_action": [str(user.pk)]}

    asked = admin.post(users, selection)
    assert asked.status_code == 200
    assert b"Yes, revoke" in asked.content
    assert Session.objects.filter(revoked_at__isnull=False).count() == 0

    done = admin.post(users, {**selection, "post": "yes"})

    assert done.status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    for session in (password_session, key_session):
        assert Session.objects.get(pk=session.pk).revoked_at is not None
        assert sessions.is_revoked({"sid": str(session.pk)})
    assert Session.objects.get(pk=others_session.pk).revoked_at is None
    assert not AccessToken.objects.filter(user=user).exists()
    assert DOTRefreshToken.objects.get(user=user).revoked is not None
    assert LogEntry.objects.get(object_id=str(user.pk)).change_message == (
        "Revoked all sessions, API keys and OAuth 2.0 tokens."
    )


def test_user_page_lists_the_users_api_keys(admin: Client, user: Any) -> None:

    issued = api_keys.issue(user, name="laptop")
    page = admin.get(reverse("admin:auth_user_change", args=[user.pk]))
    assert page.status_code == 200
    assert issued.api_key.key_id.encode() in page.content
    assert issued.secret.encode() not in page.content


def test_user_page_links_to_the_users_sessions_and_keys(
    admin: Client, user: Any, django_user_model: Any
) -> None:
    other = django_user_model.objects.create_user("bob", password="bob-password")
    mine = [start(user), start(user)]
    sessions.revoke_session(mine[1].pk)
    theirs = start(other)
    key = api_keys.issue(user, name="laptop").api_key
    api_keys.issue(other, name="bob's")

    page = admin.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()

    sessions_link = f"{SESSIONS}?user__id__exact={user.pk}"
    keys_link = f"{reverse('admin:django_tokens_apikey_changelist')}?owner__id__exact={user.pk}"
    assert f'href="{sessions_link}">1 live session<' in page
    assert f'href="{keys_link}">1 live API key<' in page
    listed = admin.get(sessions_link).content.decode()
    assert str(mine[0].pk) in listed
    assert str(mine[1].pk) in listed
    assert str(theirs.pk) not in listed
    keys = admin.get(keys_link).content.decode()
    assert key.key_id in keys
    assert "bob&#x27;s" not in keys


@pytest.mark.parametrize(
    ("changelist", "make"),
    [
        ("admin:django_tokens_session_changelist", "session"),
        ("admin:django_tokens_apikey_changelist", "key"),
    ],
)
def test_lists_filter_by_state(admin: Client, user: Any, changelist: str, make: str) -> None:
    now = timezone.now()
    if make == "session":
        live, expired, revoked = start(user), start(user), start(user)
        Session.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(seconds=1))
        sessions.revoke_session(revoked.pk)
        label = {row: str(row.pk) for row in (live, expired, revoked)}
    else:
        live, expired, revoked = (api_keys.issue(user, name=n).api_key for n in "abc")
        ApiKey.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(seconds=1))
        api_keys.revoke(revoked.key_id)
        label = {row: row.key_id for row in (live, expired, revoked)}

    for state, expected in (("live", live), ("expired", expired), ("revoked", revoked)):
        page = admin.get(reverse(changelist), {"state": state}).content.decode()
        assert [row for row in label if label[row] in page] == [expected], state
