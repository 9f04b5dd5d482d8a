"""Revocation that follows the users and keys it depends on.

Deleting or deactivating a user, or deleting an API key, revokes the sessions concerned and
marks them, so their access tokens stop at once, not when they expire. Connected in
:meth:`django_tokens.apps.DjangoTokensConfig.ready`.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import router, transaction
from django.utils import timezone

from django_tokens import audit, sessions
from django_tokens.models import ApiKey, Session


def revoke_sessions_of_deleted_user(sender: Any, instance: Any, **kwargs: Any) -> None:
    sessions.revoke_user(instance, reason="user_deleted")
    # OAuth 2.0 tokens go with the user's rows (CASCADE); mark_deleted_access_token marks them.


def revoke_sessions_of_deactivated_user(
    sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    if created or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    sessions.revoke_user(instance, reason="user_deactivated")
    revoke_oauth2_tokens_of_user(instance)


def revoke_sessions_of_deleted_api_key(sender: Any, instance: ApiKey, **kwargs: Any) -> None:
    sessions.revoke_sessions(Session.objects.filter(api_key=instance), reason="api_key_deleted")


def revoke_oauth2_tokens_of_user(user: Any) -> None:
    """Revoke a user's django-oauth-toolkit refresh tokens and delete their access tokens
    (each deletion marks the token, see :func:`mark_deleted_access_token`)."""
    if not apps.is_installed("oauth2_provider"):
        return
    from oauth2_provider.models import get_access_token_model, get_refresh_token_model

    access_token_model = get_access_token_model()
    with transaction.atomic(using=router.db_for_write(access_token_model)):
        now = timezone.now()
        refresh_tokens = (
            get_refresh_token_model()
            .objects.filter(user=user, revoked__isnull=True)
            .update(revoked=now, updated=now)
        )
        access_tokens, _by_model = access_token_model.objects.filter(user=user).delete()
        if refresh_tokens or access_tokens:
            audit.record(
                audit.Action.OAUTH2_TOKEN_REVOKED,
                user=user,
                actor="",
                detail={"refresh_tokens": refresh_tokens, "deleted_rows": access_tokens},
                now=now,
            )


def mark_deleted_access_token(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A django-oauth-toolkit access token row is gone (revoked, rotated away, its client or
    user deleted): mark the token so that JWTAuthentication refuses it without a query, as
    DOT's own OAuth2Authentication does. The mark is written once the deletion commits."""
    checksum, expires = instance.token_checksum, instance.expires
    if not checksum or expires is None:
        return
    using = kwargs.get("using") or router.db_for_write(sender)
    transaction.on_commit(
        lambda: sessions.set_token_marks({checksum: expires}, now=timezone.now()), using=using
    )
