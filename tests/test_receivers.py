"""Deleting or deactivating what sessions depend on revokes them, with marks."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import RequestFactory

from django_tokens import api_keys, sessions
from django_tokens.models import Session, SigningKey

pytestmark = pytest.mark.django_db


def open_session(user: Any, **kwargs: Any) -> str:
    return str(sessions.start(user, service="password", **kwargs).session.pk)


def test_deleting_a_user_marks_their_sessions_revoked(user: Any) -> None:
    sid = open_session(user)
    user.delete()
    assert sessions.is_revoked({"sid": sid})


def test_deactivating_a_user_revokes_and_marks_their_sessions(user: Any) -> None:
    sid = open_session(user)
    user.is_active = False
    user.save()
    assert Session.objects.get(pk=sid).revoke_reason == "user_deactivated"
    assert sessions.is_revoked({"sid": sid})


def test_saving_an_active_user_revokes_nothing(user: Any) -> None:
    sid = open_session(user)
    user.first_name = "Alice"
    user.save()
    assert Session.objects.get(pk=sid).revoked_at is None
    assert not sessions.is_revoked({"sid": sid})


def test_deleting_an_api_key_marks_its_sessions_revoked(user: Any) -> None:
    issued = api_keys.issue(user, name="doomed")
    sid = str(sessions.start(user, service="api_key", api_key=issued.api_key).session.pk)
    other = open_session(user)
    issued.api_key.delete()
    assert sessions.is_revoked({"sid": sid})
    assert not sessions.is_revoked({"sid": other})


@pytest.mark.parametrize("model", [Session, SigningKey])
def test_the_admin_cannot_delete_sessions_or_signing_keys(model: Any, admin_user: Any) -> None:
    request = RequestFactory().get("/")
    request.user = admin_user
    assert not admin.site._registry[model].has_delete_permission(request)
