"""django-oauth-toolkit's application admin as this app configures it (DOT's
``APPLICATION_ADMIN_CLASS`` hook): a client secret is generated when the application is
saved, shown once on a ``no-store`` page, replaced the same way, and never in a form."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from oauth2_provider.models import Application

from django_tokens.models import AuditEvent
from tests.test_oauth2_token import basic

pytestmark = pytest.mark.django_db

ADD = reverse("admin:oauth2_provider_application_add")
LIST = reverse("admin:oauth2_provider_application_changelist")
FORM = {
    "name": "Reporting",
    "client_id": "reporting-client",
    "client_type": "confidential",
    "authorization_grant_type": "client-credentials",
    "redirect_uris": "",
    "post_logout_redirect_uris": "",
    "allowed_origins": "",
    "algorithm": "",
    "hash_client_secret": "on",
}


@pytest.fixture
def admin(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def shown_secret(page: Any) -> str:
    (secret,) = re.findall(r'class="vTextField secret"[^>]*value="([^"]+)"', page.content.decode())
    return secret


def token_status(client_id: str, secret: str) -> int:
    response = Client().post(
        "/oauth2/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(client_id, secret),
    )
    return response.status_code


def assert_no_store(response: Any) -> None:
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_the_add_form_holds_no_secret(admin: Client) -> None:
    page = admin.get(ADD).content.decode()
    assert 'name="client_secret"' not in page
    assert "vTextField secret" not in page


def test_a_new_application_shows_its_secret_once_and_it_works(
    admin: Client, admin_user: Any
) -> None:
    page = admin.post(ADD, FORM)

    assert page.status_code == 200, page.content[:2000]
    assert_no_store(page)
    secret = shown_secret(page)
    assert len(secret) >= 40
    assert "reporting-client" in page.content.decode()
    application = Application.objects.get(client_id="reporting-client")
    assert application.client_secret != secret  # stored hashed
    assert token_status("reporting-client", secret) == 200
    assert token_status("reporting-client", secret + "x") == 401

    for later in (
        admin.get(LIST),
        admin.get(reverse("admin:oauth2_provider_application_change", args=[application.pk])),
    ):
        assert later.status_code == 200
        assert secret not in later.content.decode()
    entry = LogEntry.objects.get(object_id=str(application.pk))
    assert (entry.action_flag, entry.user_id) == (ADDITION, admin_user.pk)
    issued = AuditEvent.objects.get(action="client_secret_issued")
    assert (issued.client_id, issued.actor, issued.detail) == (
        "reporting-client",
        admin_user.get_username(),
        {"secret": "created"},
    )
    assert secret not in str(issued.detail)


def test_a_public_client_is_told_it_needs_no_secret(admin: Client) -> None:
    page = admin.post(
        ADD,
        {
            **FORM,
            "client_id": "pocket",
            "client_type": "public",
            "authorization_grant_type": "authorization-code",
            "redirect_uris": "https://app.example/callback",
        },
    )
    assert page.status_code == 200
    assert "public client" in page.content.decode()


def test_an_invalid_form_shows_errors_and_creates_nothing(admin: Client) -> None:
    page = admin.post(ADD, {**FORM, "authorization_grant_type": "authorization-code"})
    assert page.status_code == 200
    assert "errornote" in page.content.decode()
    assert "vTextField secret" not in page.content.decode()
    assert not Application.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_new_secret_replaces_the_old_one_after_a_confirmation(
    admin: Client, admin_user: Any
) -> None:
    old = shown_secret(admin.post(ADD, FORM))
    application = Application.objects.get(client_id="reporting-client")
    url = reverse("admin:oauth2_provider_application_new-secret", args=[application.pk])
    change = admin.get(reverse("admin:oauth2_provider_application_change", args=[application.pk]))
    assert url in change.content.decode()

    asked = admin.get(url)
    assert asked.status_code == 200
    assert "stops working at once" in asked.content.decode()
    assert token_status("reporting-client", old) == 200

    page = admin.post(url, {"post": "yes"})

    assert page.status_code == 200
    assert_no_store(page)
    new = shown_secret(page)
    assert new != old
    assert token_status("reporting-client", new) == 200
    assert token_status("reporting-client", old) == 401
    entry = LogEntry.objects.filter(object_id=str(application.pk), action_flag=CHANGE).get()
    assert entry.get_change_message() == "Replaced the client secret."
    secret_events = AuditEvent.objects.filter(action="client_secret_issued").order_by("id")
    assert [event.detail for event in secret_events] == [
        {"secret": "created"},
        {"secret": "replaced"},
    ]


def test_staff_without_the_change_permission_cannot_replace_a_secret(
    client: Client, django_user_model: Any
) -> None:
    application = Application.objects.create(
        name="svc",
        client_id="svc",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    stored = Application.objects.get(pk=application.pk).client_secret
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_application"))
    client.force_login(staff)
    url = reverse("admin:oauth2_provider_application_new-secret", args=[application.pk])

    change = client.get(reverse("admin:oauth2_provider_application_change", args=[application.pk]))
    assert change.status_code == 200
    assert url not in change.content.decode()
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Application.objects.get(pk=application.pk).client_secret == stored
