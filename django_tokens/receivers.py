"""Revocation that follows the users and keys it depends on.

Deleting or deactivating a user, or deleting an API key, revokes the sessions concerned and
marks them, so their access tokens stop at once, not when they expire. Connected in
:meth:`django_tokens.apps.DjangoTokensConfig.ready`.
"""

from __future__ import annotations

from typing import Any

from django_tokens import sessions
from django_tokens.models import ApiKey, Session


def revoke_sessions_of_deleted_user(sender: Any, instance: Any, **kwargs: Any) -> None:
    sessions.revoke_user(instance, reason="user_deleted")


def revoke_sessions_of_deactivated_user(
    sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    if created or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    sessions.revoke_user(instance, reason="user_deactivated")


def revoke_sessions_of_deleted_api_key(sender: Any, instance: ApiKey, **kwargs: Any) -> None:
    sessions.revoke_sessions(Session.objects.filter(api_key=instance), reason="api_key_deleted")
