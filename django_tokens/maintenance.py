"""Housekeeping shared by the management commands and the admin: purge and re-encryption."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import Q, signals
from django.utils import timezone

from django_tokens import keystore
from django_tokens.conf import max_token_lifetime, token_settings
from django_tokens.crypto import DecryptionError, secret_box
from django_tokens.models import ApiKey, AuditEvent, RefreshToken, Session, SigningKey

#: Every stored ciphertext of the secret box, as (model, field name).
ENCRYPTED_FIELDS: list[tuple[type[models.Model], str]] = [
    (SigningKey, "encrypted_private_key"),
    (ApiKey, "encrypted_secret"),
    (ApiKey, "encrypted_previous_secret"),
]


def _delete_in_batches(
    queryset: models.QuerySet,
    batch_size: int,
    dependents: Callable[[list[Any]], models.QuerySet] | None = None,
) -> int:
    """Delete the rows of ``queryset`` a batch at a time, so no long lock blocks issuance.

    A batch is any ``batch_size`` matching rows: without the model's default ordering, which
    would make the database sort every matching row again for each batch. ``dependents(batch)``
    names rows that cascade from the batch; deleting them first, in one statement, spares
    Django's deletion collector from loading every row of the batch to find them."""
    removed = 0
    pks = queryset.order_by().values_list("pk", flat=True)
    while True:
        batch = list(pks[:batch_size])
        if not batch:
            return removed
        rows = queryset.model._default_manager.filter(pk__in=batch)
        if dependents is None or not _cascades_only_to(queryset.model, dependents(batch).model):
            rows.delete()
        else:
            with transaction.atomic(using=rows.db):
                dependents(batch).delete()
                # What Django's collector would do here, in one statement: nothing else
                # refers to these rows, and nobody listens for their deletion.
                rows._raw_delete(rows.db)
        removed += len(batch)


def _cascades_only_to(model: type[models.Model], dependent: type[models.Model]) -> bool:
    """Whether ``dependent`` is the only model referring to ``model`` and no receiver hears
    ``model``'s deletions: then, once the dependents are gone, nothing is left to collect."""
    referring = {relation.related_model for relation in model._meta.related_objects}
    return referring == {dependent} and not (
        signals.pre_delete.has_listeners(model) or signals.post_delete.has_listeners(model)
    )


@dataclass
class PurgeResult:
    counts: dict[str, int] = field(default_factory=dict)


def purge(
    *,
    batch_size: int = 5000,
    now: datetime | None = None,
    audit_retention: timedelta | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> PurgeResult:
    """Delete what can no longer be used: expired refresh tokens, expired or long-revoked
    sessions (with their families), expired OAuth 2.0 codes and tokens, audit entries older
    than ``audit_retention`` (default: the ``AUDIT_RETENTION`` setting; zero keeps them);
    mark retiring keys whose tokens have expired as retired.

    Revoked sessions are kept as long as an access token of theirs could still be presented,
    then removed.
    """
    now = now or timezone.now()
    result = PurgeResult()

    def done(label: str, count: int) -> None:
        result.counts[label] = count
        if progress:
            progress(label, count)

    revoked_before = now - timedelta(seconds=max_token_lifetime())
    steps: list[tuple[str, models.QuerySet]] = [
        ("refresh tokens", RefreshToken.objects.filter(expires_at__lte=now)),
        (
            "sessions",
            Session.objects.filter(Q(expires_at__lte=now) | Q(revoked_at__lte=revoked_before)),
        ),
    ]
    if audit_retention is None:
        audit_retention = timedelta(seconds=token_settings.AUDIT_RETENTION)
    audit_events = AuditEvent.objects.none()  # a zero retention keeps every entry
    if audit_retention:
        audit_events = AuditEvent.objects.filter(created_at__lt=now - audit_retention)
    steps.append(("audit events", audit_events))
    dependents = {"sessions": lambda batch: RefreshToken.objects.filter(session_id__in=batch)}
    for label, queryset in steps:
        done(label, _delete_in_batches(queryset, batch_size, dependents.get(label)))
    if apps.is_installed("oauth2_provider"):
        done("oauth2 rows", _clear_expired_oauth2())
    done("signing keys retired", keystore.retire_expired(now=now))
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


def reencrypt_secrets(*, progress: Callable[[str], None] | None = None) -> ReencryptResult:
    """Re-encrypt every stored secret under the newest key in ``ENCRYPTION_KEYS``.

    Each row is rewritten on its own with a compare-and-set UPDATE, so the command can be
    stopped at any point and run again: a row is always readable under the old or new key,
    and a row changed meanwhile (a rotation) is left to the next run. ``progress`` hears
    the label of each row re-encrypted, once its UPDATE has committed.
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
            updated = model._default_manager.filter(pk=pk, **{field_name: ciphertext}).update(
                **{field_name: fresh}
            )
            result.reencrypted += updated
            if updated and progress:
                progress(f"{model._meta.label}.{field_name}:{pk}")
    return result
