"""The admin's API-key workflow: issue (secret shown once, ``no-store``), rotate and revoke as
object views and as bulk actions with a confirmation step, permissions, and the admin log."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from django_tokens import api_keys, sessions
from django_tokens.crypto import secret_box
from django_tokens.models import ApiKey, Session

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_tokens_apikey_changelist")
ADD = reverse("admin:django_tokens_apikey_add")


def rotate_url(key: ApiKey) -> str:
    return reverse("admin:django_tokens_apikey_rotate", args=[key.pk])


def revoke_url(key: ApiKey) -> str:
    return reverse("admin:django_tokens_apikey_revoke", args=[key.pk])


def change_url(key: ApiKey) -> str:
    return reverse("admin:django_tokens_apikey_change", args=[key.pk])


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def key(user: Any) -> api_keys.IssuedSecret:
    return api_keys.issue(user, name="ci")


def current_secret(key: ApiKey) -> str:
    key.refresh_from_db()
    return secret_box().decrypt(key.encrypted_secret).decode()


def test_issue_form_issues_a_key_and_shows_its_secret_once(admin: Client, user: Any) -> None:
    form = admin.get(ADD)
    assert form.status_code == 200
    assert b"openid email app_metadata user_metadata profile" in form.content

    response = admin.post(
        ADD,
        {
            "owner": user.username,
            "name": "reporting",
            "scopes": "openid email",
            "expires_in_days": "30",
        },
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"].split(", ")
    issued = ApiKey.objects.get(name="reporting")
    secret = current_secret(issued)
    assert secret.encode() in response.content
    assert issued.owner == user
    assert issued.scope == "openid email"
    assert issued.expires_at is not None
    for page in (CHANGELIST, change_url(issued)):
        assert secret.encode() not in admin.get(page).content
    entry = LogEntry.objects.get(object_id=str(issued.pk))
    assert entry.action_flag == ADDITION


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"owner": "nobody", "name": "x", "scopes": "openid"}, b"No user has that username."),
        ({"owner": "alice", "name": "x", "scopes": "   "}, b"This field is required."),
        ({"owner": "alice", "name": "x", "scopes": "a", "expires_in_days": "0"}, b"greater than"),
    ],
)
def test_issue_form_refuses_bad_input_and_issues_nothing(
    admin: Client, user: Any, form: dict[str, str], error: bytes
) -> None:
    response = admin.post(ADD, form)
    assert response.status_code == 200
    assert error in response.content
    assert not ApiKey.objects.exists()


def test_rotate_view_confirms_then_shows_the_new_secret_and_keeps_the_old_for_the_grace(
    admin: Client, key: api_keys.IssuedSecret
) -> None:
    confirm = admin.get(rotate_url(key.api_key))
    assert confirm.status_code == 200
    assert current_secret(key.api_key) == key.secret

    response = admin.post(rotate_url(key.api_key), {"post": "yes", "grace_seconds": "120"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"].split(", ")
    new_secret = current_secret(key.api_key)
    assert new_secret != key.secret
    assert new_secret.encode() in response.content
    assert key.secret.encode() not in response.content
    key.api_key.refresh_from_db()
    assert key.api_key.previous_secret_expires_at is not None
    entry = LogEntry.objects.get(object_id=str(key.api_key.pk))
    assert (entry.action_flag, entry.change_message) == (
        CHANGE,
        "Rotated the secret (grace 120 s).",
    )


def test_revoke_view_confirms_then_revokes_the_key_and_its_sessions(
    admin: Client, key: api_keys.IssuedSecret, user: Any
) -> None:
    session = sessions.start(user, service=Session.Service.API_KEY, api_key=key.api_key).session
    assert admin.get(revoke_url(key.api_key)).status_code == 200
    assert ApiKey.objects.get(pk=key.api_key.pk).revoked_at is None

    response = admin.post(revoke_url(key.api_key), {"post": "yes"})

    assert response.status_code == 302
    assert response["Location"] == change_url(key.api_key)
    assert ApiKey.objects.get(pk=key.api_key.pk).revoked_at is not None
    assert Session.objects.get(pk=session.pk).revoked_at is not None
    assert sessions.is_revoked({"sid": str(session.pk)})
    assert LogEntry.objects.get(object_id=str(key.api_key.pk)).change_message == (
        "Revoked the key and its sessions."
    )
    # A revoked key offers neither view any more.
    again = admin.get(rotate_url(key.api_key))
    assert again.status_code == 302


def test_bulk_revoke_asks_first_then_revokes_each_key(admin: Client, user: Any) -> None:
    keys = [api_keys.issue(user, name=f"k{i}").api_key for i in range(2)]
    selection = {"action": "revoke_selected", "_selected_action": [str(k.pk) for k in keys]}

    asked = admin.post(CHANGELIST, selection)
    assert asked.status_code == 200
    assert b"Yes, revoke" in asked.content
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()

    done = admin.post(CHANGELIST, {**selection, "post": "yes"})

    assert done.status_code == 302
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 2
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2


def test_bulk_rotate_shows_every_new_secret_once(admin: Client, user: Any) -> None:
    keys = [api_keys.issue(user, name=f"k{i}") for i in range(2)]
    selection = {"action": "rotate_selected", "_selected_action": [str(k.api_key.pk) for k in keys]}
    assert admin.post(CHANGELIST, selection).status_code == 200

    response = admin.post(CHANGELIST, {**selection, "post": "yes", "grace_seconds": "0"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"].split(", ")
    for issued in keys:
        new_secret = current_secret(issued.api_key)
        assert new_secret != issued.secret
        assert new_secret.encode() in response.content


def test_staff_without_permissions_can_neither_see_nor_act(
    client: Client, django_user_model: Any, key: api_keys.IssuedSecret
) -> None:
    staff = django_user_model.objects.create_user("staff", password="staff-password", is_staff=True)
    client.force_login(staff)

    assert b"API keys" not in client.get(reverse("admin:index")).content
    for url in (CHANGELIST, ADD, rotate_url(key.api_key), revoke_url(key.api_key)):
        assert client.get(url).status_code == 403, url
    assert client.post(revoke_url(key.api_key), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.get(pk=key.api_key.pk).revoked_at is None


def test_view_permission_alone_lists_keys_but_cannot_issue_rotate_or_revoke(
    client: Client, django_user_model: Any, key: api_keys.IssuedSecret
) -> None:
    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(viewer)

    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    assert key.api_key.key_id.encode() in listing.content
    assert b"revoke_selected" not in listing.content
    assert client.get(ADD).status_code == 403
    assert client.get(rotate_url(key.api_key)).status_code == 403
    assert client.post(revoke_url(key.api_key), {"post": "yes"}).status_code == 403
