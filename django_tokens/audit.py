"""The audit trail: every issuance, refresh, reuse detection, revocation and rotation, with
who did it, when, from which address, and which user, session, API key, client and signing
key it concerned. Never a secret.

An entry is written in the transaction of the change it records, so neither exists without
the other. Who and from where come from the context of the call: the token endpoints, the
admin and the management commands each open one (:func:`context`); without one, the user
the change concerns stands as its actor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from django_tokens.conf import token_settings
from django_tokens.models import ApiKey, AuditEvent, Session
from django_tokens.throttling import address_of

Action = AuditEvent.Action


@dataclass(frozen=True)
class _Context:
    actor: str
    ip: str | None


_current: ContextVar[_Context | None] = ContextVar("django_tokens_audit", default=None)


@contextmanager
def context(*, actor: str = "", ip: str | None = None) -> Iterator[None]:
    """Attribute the changes made inside the block to ``actor``, from address ``ip``."""
    token = _current.set(_Context(actor[:200], ip))
    try:
        yield
    finally:
        _current.reset(token)


def request_context(request: Any) -> Any:
    """:func:`context` for an HTTP request: its signed-in user (if any) and client address."""
    user = getattr(request, "user", None)
    actor = user.get_username() if user is not None and user.is_authenticated else ""
    return context(actor=actor, ip=address_of(request))


def _user_fields(user: Any) -> dict[str, str]:
    if user is None:
        return {}
    return {"user_id_value": str(user.pk), "username": user.get_username()[:254]}


def _event(
    action: str,
    *,
    now: datetime,
    user: Any = None,
    session: Session | None = None,
    api_key: ApiKey | None = None,
    actor: str | None = None,
    **fields: Any,
) -> AuditEvent:
    ctx = _current.get()
    values = _user_fields(user)
    if session is not None:
        fields.setdefault("session_id", session.pk)
        fields.setdefault("service", session.service)
    if api_key is not None:
        fields.setdefault("api_key_id", api_key.key_id)
    if actor is None:
        actor = values.get("username", "")
    who = (ctx.actor if ctx else "") or actor
    return AuditEvent(
        action=action,
        created_at=now,
        actor=who,
        ip=ctx.ip if ctx else None,
        **values,
        **fields,
    )


def record(
    action: str,
    *,
    user: Any = None,
    session: Session | None = None,
    api_key: ApiKey | None = None,
    client_id: str = "",
    signing_kid: str = "",
    actor: str | None = None,
    detail: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write one entry. ``actor`` stands when the call's context names none; by default it
    is the user concerned (``""``: nobody known)."""
    if not token_settings.AUDIT:
        return
    _event(
        action,
        now=now or timezone.now(),
        user=user,
        session=session,
        api_key=api_key,
        actor=actor,
        client_id=client_id[:255],
        signing_kid=signing_kid,
        detail=dict(detail or {}),
    ).save(force_insert=True)


def record_revoked_sessions(session_ids: list[str], *, reason: str, now: datetime) -> None:
    """One ``session_revoked`` entry per session, in one INSERT."""
    if not token_settings.AUDIT or not session_ids:
        return
    username_field = get_user_model().USERNAME_FIELD
    rows = Session.objects.filter(pk__in=session_ids).values(
        "pk", "service", "user_id", f"user__{username_field}", "api_key__key_id"
    )
    AuditEvent.objects.bulk_create(
        [
            _event(
                Action.SESSION_REVOKED,
                now=now,
                session_id=row["pk"],
                service=row["service"],
                user_id_value=str(row["user_id"]),
                username=str(row[f"user__{username_field}"])[:254],
                api_key_id=row["api_key__key_id"] or "",
                detail={"reason": reason},
            )
            for row in rows
        ]
    )
