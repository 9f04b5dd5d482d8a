"""Housekeeping shared by the management commands and the admin: purge and re-encryption."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps
from django.db import models
from django.db.models import Q
from django.utils import timezone

from django_tokens.conf import max_token_lifetime
from django_tokens.crypto import DecryptionError, secret_box
from django_tokens.models import ApiKey, RefreshToken, Session, SigningKey

#: Every stored ciphertext of the secret box, as (model, field name).
ENCRYPTED_FIELDS: list[tuple[type[models.Model], str]] = [
    (SigningKey, "encrypted_private_key"),
    (ApiKey, "encrypted_secret"),
    (ApiKey, "encrypted_previous_secret"),
]


def _delete_in_batches(queryset: models.QuerySet, batch_size: int) -> int:
    """Delete the rows of ``queryset`` a batch at a time, so no long lock blocks issuance."""
    removed = 0
    while True:
        batch = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not batch:
            return removed
        queryset.model._default_manager.filter(pk__in=batch).delete()
        removed += len(batch)


@dataclass
class PurgeResult:
    counts: dict[str, int] = field(default_factory=dict)


def purge(
    *,
    batch_size: int = 5000,
    now: datetime | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> PurgeResult:
    """Delete what can no longer be used: expired refresh tokens, expired or long-revoked
    sessions (with their families), expired OAuth 2.0 codes and tokens; mark retiring keys
    whose tokens have expired as retired.

    Revoked sessions are kept as long as an access token of theirs could still be presented,
    then removed.
    """
    now = now or timezone.now()
    result = PurgeResult()
    revoked_before = now - timedelta(seconds=max_token_lifetime())
    steps: list[tuple[str, models.QuerySet]] = [
        ("refresh tokens", RefreshToken.objects.filter(expires_at__lte=now)),
        (
            "sessions",
            Session.objects.filter(Q(expires_at__lte=now) | Q(revoked_at__lte=revoked_before)),
        ),
    ]
    for label, queryset in steps:
        result.counts[label] = _delete_in_batches(queryset, batch_size)
        if progress:
            progress(label, result.counts[label])
    if apps.is_installed("oauth2_provider"):
        result.counts["oauth2 rows"] = _clear_expired_oauth2()
        if progress:
            progress("oauth2 rows", result.counts["oauth2 rows"])
    result.counts["signing keys retired"] = SigningKey.objects.filter(
        state=SigningKey.State.RETIRING, retire_after__lte=now
    ).update(state=SigningKey.State.RETIRED, retired_at=now)
    return result


def _clear_expired_oauth2() -> int:
    """django-oauth-toolkit's own ``clear_expired`` (its ``cleartokens`` command): expired
    authorization codes, access tokens, ID tokens and the refresh tokens its settings let
    go. Returns how many rows went."""
    from oauth2_provider import models as dot

    tables = [
        dot.get_grant_model(),
        dot.get_access_token_model(),
        dot.get_id_token_model(),
        dot.get_refresh_token_model(),
    ]
    before = sum(model._default_manager.count() for model in tables)
    dot.clear_expired()
    return before - sum(model._default_manager.count() for model in tables)


@dataclass
class ReencryptResult:
    reencrypted: int = 0
    already_current: int = 0
    failed: list[str] = field(default_factory=list)


def reencrypt_secrets() -> ReencryptResult:
    """Re-encrypt every stored secret under the newest key in ``ENCRYPTION_KEYS``.

    Each row is rewritten on its own with a compare-and-set UPDATE, so the command can be
    stopped at any point and run again: a row is always readable under the old or new key,
    and a row changed meanwhile (a rotation) is left to the next run.
    """
    box = secret_box()
    result = ReencryptResult()
    for model, field_name in ENCRYPTED_FIELDS:
        rows = model._default_manager.values_list("pk", field_name).iterator()
        for pk, ciphertext in rows:
            if not ciphertext:
                continue
            if box.is_current(ciphertext):
                result.already_current += 1
                continue
            try:
                fresh = box.reencrypt(ciphertext)
            except DecryptionError:
                result.failed.append(f"{model._meta.label}:{pk}")
                continue
            # A row changed meanwhile (a rotation) is left as it is: it is current already.
            result.reencrypted += model._default_manager.filter(
                pk=pk, **{field_name: ciphertext}
            ).update(**{field_name: fresh})
    return result
