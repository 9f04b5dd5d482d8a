"""The audit trail: every issuance, refresh, reuse detection, revocation and rotation is one
entry naming who, when, from which address, and which user, session, API key, client and
signing key; never a secret. Entries are written in the change's own transaction, viewable
read-only in the admin, and purged by age.

Tokens come from the real endpoints through Django's test client (``REMOTE_ADDR`` is the
client address the entries must carry); OAuth 2.0 clients are django-oauth-toolkit
applications made with its ``createapplication`` command.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from django_tokens import api_keys, audit, keystore, sessions
from django_tokens.conf import token_settings
from django_tokens.maintenance import purge
from django_tokens.models import AuditEvent, Session
from tests.test_oauth2_token import basic, create_application, printed_secret

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"
Action = AuditEvent.Action


@pytest.fixture
def web(client: Client) -> Client:
    client.defaults["REMOTE_ADDR"] = ADDRESS
    return client


def tokens_settings(**changes: Any) -> override_settings:
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **changes})


def events(action: str | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.order_by("id")
    return list(found.filter(action=action) if action else found)


def only(action: str) -> AuditEvent:
    found = events(action)
    assert len(found) == 1, [event.action for event in events()]
    return found[0]


def trail_text() -> str:
    """Every stored value of every entry, as one string."""
    return json.dumps([model_to_dict(event) for event in events()], default=str)


def password_tokens(web: Client) -> dict[str, Any]:
    response = web.post(
        "/api/token",
        {"username": "alice", "password": "alice-password"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def refresh(web: Client, refresh_token: str) -> Any:
    return web.post(
        "/api/token/refresh", {"refresh_token": refresh_token}, content_type="application/json"
    )


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def assertion(key_id: str, secret: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
        secret,
        algorithm="HS256",
        headers={"kid": key_id},
    )


# -- password tokens -----------------------------------------------------------------------


def test_issuance_names_user_session_key_and_address(web: Client, user: Any) -> None:
    tokens = password_tokens(web)

    event = only(Action.TOKEN_ISSUED)
    access = claims(tokens["access_token"])
    assert event.actor == "alice"
    assert event.ip == ADDRESS
    assert (event.user_id_value, event.username) == (str(user.pk), "alice")
    assert event.service == Session.Service.PASSWORD
    assert str(event.session_id) == access["sid"]
    assert event.signing_kid == jwt.get_unverified_header(tokens["access_token"])["kid"]
    assert event.detail == {"scope": " ".join(token_settings.PASSWORD_SCOPES)}
    assert abs(event.created_at - timezone.now()) < timedelta(seconds=30)


def test_failed_sign_in_writes_nothing(web: Client, user: Any) -> None:
    response = web.post(
        "/api/token",
        {"username": "alice", "password": "wrong"},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert events() == []


def test_refresh_then_reuse_are_recorded_and_the_family_revoked(web: Client, user: Any) -> None:
    first = password_tokens(web)
    sid = claims(first["access_token"])["sid"]
    assert refresh(web, first["refresh_token"]).status_code == 200

    refreshed = only(Action.TOKEN_REFRESHED)
    assert (str(refreshed.session_id), refreshed.actor, refreshed.ip) == (sid, "alice", ADDRESS)

    with tokens_settings(REFRESH_REUSE_GRACE=0):
        assert refresh(web, first["refresh_token"]).status_code == 401

    reuse = only(Action.REFRESH_REUSE_DETECTED)
    assert str(reuse.session_id) == sid
    assert reuse.actor == ""  # whoever presented it is not known
    assert (reuse.ip, reuse.username) == (ADDRESS, "alice")
    revoked = only(Action.SESSION_REVOKED)
    assert str(revoked.session_id) == sid
    assert revoked.detail == {"reason": "refresh_token_reused"}


def test_a_retry_within_the_grace_window_is_a_refresh_marked_as_retry(
    web: Client, user: Any
) -> None:
    first = password_tokens(web)
    assert refresh(web, first["refresh_token"]).status_code == 200
    assert refresh(web, first["refresh_token"]).status_code == 200

    assert [event.detail for event in events(Action.TOKEN_REFRESHED)] == [{}, {"retry": True}]
    assert events(Action.REFRESH_REUSE_DETECTED) == []


def test_an_issuance_that_fails_leaves_no_entry(user: Any) -> None:
    def fail(refreshed: sessions.Refreshed) -> None:
        raise RuntimeError("signing failed")

    with pytest.raises(RuntimeError):
        sessions.start(user, service=Session.Service.PASSWORD, then=fail)

    assert not Session.objects.exists()
    assert events() == []


def test_nothing_is_recorded_when_the_trail_is_off(web: Client, user: Any) -> None:
    with tokens_settings(AUDIT=False):
        tokens = password_tokens(web)
        assert refresh(web, tokens["refresh_token"]).status_code == 200
        sessions.revoke_user(user)
        keystore.rotate()
    assert events() == []


# -- API keys ------------------------------------------------------------------------------


def test_api_key_life_cycle_with_its_sessions(web: Client, user: Any) -> None:
    with audit.context(actor="ops-admin", ip="198.51.100.2"):
        issued = api_keys.issue(user, name="ci", scopes=["openid", "email"])
    key_id = issued.api_key.key_id

    response = web.post(
        "/auth/api-key", HTTP_AUTHORIZATION=f"Bearer {assertion(key_id, issued.secret)}"
    )
    assert response.status_code == 200, response.content
    sid = response.json()["session_state"]

    with audit.context(actor="ops-admin"):
        rotated = api_keys.rotate_secret(key_id, grace=timedelta(seconds=60))
        api_keys.revoke(key_id)

    made = only(Action.API_KEY_ISSUED)
    assert (made.actor, made.ip, made.username, made.api_key_id) == (
        "ops-admin",
        "198.51.100.2",
        "alice",
        key_id,
    )
    assert made.detail == {"scope": "openid email", "expires_at": None}
    exchanged = only(Action.TOKEN_ISSUED)
    assert (exchanged.service, exchanged.api_key_id, str(exchanged.session_id)) == (
        Session.Service.API_KEY,
        key_id,
        sid,
    )
    assert (exchanged.actor, exchanged.ip) == ("alice", ADDRESS)
    assert only(Action.API_KEY_SECRET_ROTATED).detail == {"grace_seconds": 60}
    assert only(Action.API_KEY_REVOKED).actor == "ops-admin"
    ended = only(Action.SESSION_REVOKED)
    assert (str(ended.session_id), ended.api_key_id, ended.detail) == (
        sid,
        key_id,
        {"reason": "api_key_revoked"},
    )

    text = trail_text()
    for secret in (issued.secret, rotated.secret, response.json()["refresh_token"]):
        assert secret not in text
    assert response.json()["access_token"] not in text


def test_revoking_a_user_records_each_key_and_session(user: Any, django_user_model: Any) -> None:
    keys = [api_keys.issue(user, name=f"key-{n}") for n in range(2)]
    api_keys.issue(django_user_model.objects.create_user("bob"), name="bob's")
    opened = [sessions.start(user, service=Session.Service.PASSWORD) for _ in range(3)]

    api_keys.revoke_all_of(user)
    sessions.revoke_user(user)

    assert {event.api_key_id for event in events(Action.API_KEY_REVOKED)} == {
        issued.api_key.key_id for issued in keys
    }
    assert {event.session_id for event in events(Action.SESSION_REVOKED)} == {
        refreshed.session.pk for refreshed in opened
    }


def test_entries_outlive_the_deleted_user(user: Any) -> None:
    sessions.start(user, service=Session.Service.PASSWORD)
    user_id = str(user.pk)

    user.delete()

    revoked = only(Action.SESSION_REVOKED)
    assert (revoked.username, revoked.user_id_value, revoked.detail) == (
        "alice",
        user_id,
        {"reason": "user_deleted"},
    )
    assert only(Action.TOKEN_ISSUED).username == "alice"


# -- OAuth 2.0 -----------------------------------------------------------------------------


def test_oauth2_issuance_refresh_reuse_and_revocation(web: Client, user: Any) -> None:
    application, output = create_application(
        "confidential", "client-credentials", "--name=Reporting"
    )
    secret = printed_secret(output)
    auth = {"HTTP_AUTHORIZATION": basic(application.client_id, secret)}

    issued = web.post("/oauth2/token", {"grant_type": "client_credentials"}, **auth)
    assert issued.status_code == 200, issued.content
    token = issued.json()["access_token"]
    assert web.post("/oauth2/revoke", {"token": token}, **auth).status_code == 200

    made = only(Action.TOKEN_ISSUED)
    assert (made.client_id, made.actor, made.ip, made.username) == (
        application.client_id,
        f"client:{application.client_id}",
        ADDRESS,
        "",
    )
    assert made.detail == {"grant_type": "client_credentials", "scope": "read"}
    assert made.signing_kid == jwt.get_unverified_header(token)["kid"]
    revoked = only(Action.OAUTH2_TOKEN_REVOKED)
    assert (revoked.client_id, revoked.ip) == (application.client_id, ADDRESS)

    # An unknown token answers 200 (RFC 7009) and is not an entry.
    assert web.post("/oauth2/revoke", {"token": "unknown"}, **auth).status_code == 200
    assert len(events(Action.OAUTH2_TOKEN_REVOKED)) == 1
    text = trail_text()
    assert token not in text
    assert secret not in text


def test_oauth2_refresh_and_reuse_of_a_user_grant(web: Client, user: Any) -> None:
    from tests.test_oauth2_endpoints import obtain_tokens, web_client

    app = web_client("Photo Printer")
    tokens = obtain_tokens(web, user, app, "openid profile")
    auth = {"HTTP_AUTHORIZATION": basic(app.client_id, app.secret)}

    def refresh_grant(refresh_token: str) -> Any:
        return web.post(
            "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}, **auth
        )

    assert refresh_grant(tokens["refresh_token"]).status_code == 200
    with tokens_settings(REFRESH_REUSE_GRACE=0):
        assert refresh_grant(tokens["refresh_token"]).status_code == 400

    made = only(Action.TOKEN_ISSUED)
    assert (made.username, made.client_id, made.detail["grant_type"]) == (
        "alice",
        app.client_id,
        "authorization_code",
    )
    refreshed = only(Action.TOKEN_REFRESHED)
    assert (refreshed.username, refreshed.detail["grant_type"]) == ("alice", "refresh_token")
    reuse = only(Action.REFRESH_REUSE_DETECTED)
    assert (reuse.client_id, reuse.username, reuse.actor) == (app.client_id, "alice", "")
    text = trail_text()
    for value in (tokens["access_token"], tokens["refresh_token"], tokens["id_token"]):
        assert value not in text


# -- keys ----------------------------------------------------------------------------------


def test_signing_key_rotation_and_retirement(user: Any) -> None:
    first = keystore.signing_key().kid
    rotation = keystore.rotate()
    keystore.retire(first)

    rotated = only(Action.SIGNING_KEY_ROTATED)
    assert rotated.signing_kid == rotation.active.kid
    assert rotated.detail == {
        "algorithm": rotation.active.algorithm,
        "next": rotation.next.kid,
        "retiring": first,
    }
    retired = only(Action.SIGNING_KEY_RETIRED)
    assert (retired.signing_kid, retired.detail) == (
        first,
        {"forced": False, "sessions": 0, "oauth2_tokens": 0},
    )


def test_keys_retired_by_purge_are_recorded(user: Any) -> None:
    first = keystore.signing_key().kid
    keystore.rotate()
    later = timezone.now() + timedelta(days=400)

    purge(now=later)

    retired = only(Action.SIGNING_KEY_RETIRED)
    assert (retired.signing_kid, retired.detail["forced"], retired.created_at) == (
        first,
        False,
        later,
    )


# -- retention -----------------------------------------------------------------------------


def test_purge_removes_entries_older_than_the_retention(user: Any) -> None:
    now = timezone.now()
    for days in (200, 91, 89, 1):
        audit.record(Action.API_KEY_ISSUED, user=user, now=now - timedelta(days=days))

    assert purge(now=now).counts["audit events"] == 2
    assert purge(now=now, audit_retention=timedelta(days=10)).counts["audit events"] == 1
    assert [event.created_at for event in events()] == [now - timedelta(days=1)]


def test_a_zero_retention_keeps_every_entry(user: Any) -> None:
    old = timezone.now() - timedelta(days=5000)
    audit.record(Action.API_KEY_ISSUED, user=user, now=old)

    with tokens_settings(AUDIT_RETENTION=0):
        counts = purge().counts

    assert counts["audit events"] == 0
    assert len(events()) == 1


# -- the admin -----------------------------------------------------------------------------

TRAIL = reverse("admin:django_tokens_auditevent_changelist")


def test_the_admin_shows_the_trail_read_only(client: Client, admin_user: Any, user: Any) -> None:
    sessions.start(user, service=Session.Service.PASSWORD)
    client.force_login(admin_user)

    listing = client.get(TRAIL)
    entry = events()[0]
    page = client.get(reverse("admin:django_tokens_auditevent_change", args=[entry.pk]))

    assert listing.status_code == page.status_code == 200
    assert "tokens issued" in listing.content.decode()
    assert b'name="action"' not in listing.content  # no bulk actions, no delete
    assert b"auditevent/add/" not in listing.content
    form = page.content.decode().split('id="content-main"')[1]
    assert all('type="hidden"' in tag for tag in re.findall(r"<input[^>]*>", form))
    assert "<textarea" not in form
    assert "<select" not in form
    assert 'type="submit"' not in form
    assert client.get(TRAIL + "add/").status_code == 403
    deleted = client.post(
        reverse("admin:django_tokens_auditevent_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 403
    assert AuditEvent.objects.filter(pk=entry.pk).exists()


def test_the_admin_searches_by_session_address_and_key(
    client: Client, admin_user: Any, user: Any
) -> None:
    with audit.context(ip="192.0.2.44"):
        mine = sessions.start(user, service=Session.Service.PASSWORD).session
    other = sessions.start(user, service=Session.Service.PASSWORD).session
    issued = api_keys.issue(user, name="search-me")
    client.force_login(admin_user)

    def found(term: str) -> str:
        response = client.get(TRAIL, {"q": term})
        assert response.status_code == 200
        return response.content.decode()

    by_session = found(str(mine.pk))
    assert str(mine.pk) in by_session
    assert str(other.pk) not in by_session
    by_address = found("192.0.2.44")
    assert str(mine.pk) in by_address
    assert str(other.pk) not in by_address
    by_key = found(issued.api_key.key_id)
    assert "API key issued" in by_key
    assert str(mine.pk) not in by_key
    filtered = client.get(TRAIL, {"action__exact": Action.API_KEY_ISSUED}).content.decode()
    assert issued.api_key.key_id in filtered
    assert str(mine.pk) not in filtered


def test_staff_without_the_view_permission_cannot_see_the_trail(
    client: Client, django_user_model: Any
) -> None:
    staff = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(TRAIL).status_code == 403


def test_admin_actions_are_attributed_to_the_staff_user(
    client: Client, admin_user: Any, user: Any
) -> None:
    session = sessions.start(user, service=Session.Service.PASSWORD).session
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:django_tokens_session_changelist"),
        {"action": "revoke_selected", "_selected_action": [str(session.pk)], "post": "yes"},
        REMOTE_ADDR="192.0.2.9",
    )

    assert response.status_code == 302
    revoked = only(Action.SESSION_REVOKED)
    assert (revoked.actor, revoked.ip, revoked.username) == (
        admin_user.get_username(),
        "192.0.2.9",
        "alice",
    )
    assert revoked.detail == {"reason": "admin"}


def test_commands_are_attributed_to_themselves(user: Any) -> None:
    call_command("create_api_key", "--user", "alice", "--name", "cron", stdout=io.StringIO())
    assert only(Action.API_KEY_ISSUED).actor == "manage.py create_api_key"
