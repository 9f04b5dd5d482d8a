"""API keys: issue, rotate the secret, revoke. One code path for commands and the admin.

A key's secret (384 bits from the CSPRNG, 64 characters) is returned once, by :func:`issue` or
:func:`rotate_secret`, and stored only encrypted by the secret box: assertions are checked
with HMAC, so the service must be able to recover it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from django_tokens import audit, sessions
from django_tokens.conf import token_settings
from django_tokens.crypto import DecryptionError, random_token, secret_box
from django_tokens.models import ApiKey, Session

logger = logging.getLogger(__name__)

#: 48 random bytes make a 64-character secret: as long as the hash output of HS512, the
#: longest algorithm assertions may use (RFC 7518 §3.2 requires a key at least that long).
SECRET_BYTES = 48


class ApiKeyNotFound(Exception):
    """No API key has that key id."""


class ApiKeyNotLive(Exception):
    """The key is revoked or expired: a new secret for it could never be used."""


@dataclass(frozen=True)
class IssuedSecret:
    """A key and its secret in the clear: shown once, never stored so."""

    api_key: ApiKey
    secret: str = field(repr=False)


def new_key_id() -> str:
    return f"{token_settings.API_KEY_ID_PREFIX}{secrets.token_hex(12)}"


def issue(
    owner: Any,
    *,
    name: str,
    scopes: Iterable[str] | None = None,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> IssuedSecret:
    """Create a key for ``owner``; the result carries the secret, which is never shown again."""
    now = now or timezone.now()
    secret = random_token(SECRET_BYTES)
    scope_list = list(token_settings.API_KEY_SCOPES if scopes is None else scopes)
    with transaction.atomic(using=router.db_for_write(ApiKey)):
        api_key = ApiKey.objects.create(
            owner=owner,
            name=name,
            key_id=new_key_id(),
            encrypted_secret=secret_box().encrypt(secret.encode()),
            scope=" ".join(scope_list),
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        _record(
            audit.Action.API_KEY_ISSUED,
            api_key,
            now,
            scope=api_key.scope,
            expires_at=api_key.expires_at.isoformat() if api_key.expires_at else None,
        )
    return IssuedSecret(api_key, secret)


def _record(action: str, api_key: ApiKey, now: datetime, **detail: Any) -> None:
    """An entry about a key: the owner is the user concerned, not the actor."""
    audit.record(action, user=api_key.owner, api_key=api_key, actor="", detail=detail, now=now)


def get(key_id: str) -> ApiKey:
    try:
        return ApiKey.objects.select_related("owner").get(key_id=key_id)
    except ApiKey.DoesNotExist:
        raise ApiKeyNotFound(key_id) from None


def rotate_secret(
    key_id: str, *, grace: timedelta = timedelta(0), now: datetime | None = None
) -> IssuedSecret:
    """Give the key a new secret; the current one keeps working for ``grace``.

    The row is locked while it changes, so concurrent rotations never lose a secret: each
    one's predecessor becomes the previous secret of the next.
    """
    now = now or timezone.now()
    secret = random_token(SECRET_BYTES)
    with transaction.atomic(using=router.db_for_write(ApiKey)):
        try:
            api_key = ApiKey.objects.select_for_update().select_related("owner").get(key_id=key_id)
        except ApiKey.DoesNotExist:
            raise ApiKeyNotFound(key_id) from None
        if not api_key.is_live(now):
            raise ApiKeyNotLive(key_id)
        if grace > timedelta(0):
            api_key.encrypted_previous_secret = api_key.encrypted_secret
            api_key.previous_secret_expires_at = now + grace
        else:
            api_key.encrypted_previous_secret = ""
            api_key.previous_secret_expires_at = None
        api_key.encrypted_secret = secret_box().encrypt(secret.encode())
        api_key.save(
            update_fields=[
                "encrypted_secret",
                "encrypted_previous_secret",
                "previous_secret_expires_at",
            ]
        )
        _record(
            audit.Action.API_KEY_SECRET_ROTATED,
            api_key,
            now,
            grace_seconds=int(grace.total_seconds()),
        )
    return IssuedSecret(api_key, secret)


def revoke(key_id: str, *, now: datetime | None = None) -> int:
    """Revoke the key and every session opened with it. Returns the number of sessions."""
    now = now or timezone.now()
    with transaction.atomic(using=router.db_for_write(ApiKey)):
        updated = ApiKey.objects.filter(key_id=key_id, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not updated and not ApiKey.objects.filter(key_id=key_id).exists():
            raise ApiKeyNotFound(key_id)
        if updated:
            _record(audit.Action.API_KEY_REVOKED, get(key_id), now)
        # In the same transaction: a key is never revoked while its sessions are not.
        revoked = sessions.revoke_rows(
            Session.objects.filter(api_key__key_id=key_id), reason="api_key_revoked", now=now
        )
    sessions.set_marks(revoked, now=now)
    return len(revoked)


def revoke_all_of(owner: Any, *, now: datetime | None = None) -> tuple[int, int]:
    """Revoke every live key of ``owner`` and the sessions opened with them (one UPDATE
    each). Returns (keys, sessions) revoked."""
    now = now or timezone.now()
    with transaction.atomic(using=router.db_for_write(ApiKey)):
        keys = ApiKey.objects.filter(owner=owner, revoked_at__isnull=True).update(revoked_at=now)
        if keys:
            for key in ApiKey.objects.filter(owner=owner, revoked_at=now).select_related("owner"):
                _record(audit.Action.API_KEY_REVOKED, key, now)
        revoked = sessions.revoke_rows(
            Session.objects.filter(api_key__owner=owner), reason="api_key_revoked", now=now
        )
    sessions.set_marks(revoked, now=now)
    return keys, len(revoked)


def secrets_for_verification(api_key: ApiKey, now: datetime) -> list[bytes]:
    """The secrets an assertion may be signed with now: the current one, then the previous
    one while its grace period lasts."""
    box = secret_box()
    found = [box.decrypt(api_key.encrypted_secret)]
    if (
        api_key.encrypted_previous_secret
        and api_key.previous_secret_expires_at is not None
        and api_key.previous_secret_expires_at > now
    ):
        try:
            found.append(box.decrypt(api_key.encrypted_previous_secret))
        except DecryptionError:
            logger.error("API key %s: its previous secret cannot be decrypted.", api_key.key_id)
    return found
