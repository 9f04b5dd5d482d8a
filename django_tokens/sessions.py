"""Sessions and their refresh-token families: issue, rotate, detect reuse, revoke.

Every change to a session's refresh tokens happens while that session's row is locked
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers), so concurrent refreshes
of one token leave exactly one live member in the family. A rotated token presented again
after ``REFRESH_REUSE_GRACE`` seconds revokes the whole session (RFC 9700 §4.14.2).

Revocation is a set-based UPDATE plus a *revocation mark* in the shared cache, which
:class:`~django_tokens.authentication.JWTAuthentication` reads to refuse the session's access
tokens before they expire.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from django_tokens import audit, keystore, revocation_feed
from django_tokens.conf import max_token_lifetime, token_settings
from django_tokens.crypto import digest, random_token
from django_tokens.models import ApiKey, RefreshToken, Session

logger = logging.getLogger(__name__)

MARK_PREFIX = "django_tokens:revoked"


class InvalidRefreshToken(Exception):
    """Unknown, expired, revoked, or of another service."""


class RefreshTokenReused(InvalidRefreshToken):
    """A rotated refresh token came back after the grace window: the session is revoked."""


@dataclass(frozen=True)
class Refreshed:
    session: Session
    refresh_token: str = field(repr=False)
    refresh_expires_at: datetime


def refresh_lifetime(service: str) -> int:
    if service == Session.Service.API_KEY:
        return token_settings.API_KEY_REFRESH_TOKEN_LIFETIME
    return token_settings.REFRESH_TOKEN_LIFETIME


def _refresh_expiry(session: Session, now: datetime) -> datetime:
    lifetime = timedelta(seconds=refresh_lifetime(session.service))
    return min(now + lifetime, session.expires_at)


def _new_member(session: Session, now: datetime) -> Refreshed:
    raw = random_token()
    expires_at = _refresh_expiry(session, now)
    RefreshToken.objects.create(
        session=session, token_hash=digest(raw), created_at=now, expires_at=expires_at
    )
    return Refreshed(session, raw, expires_at)


def _same(refreshed: Refreshed) -> Any:
    return refreshed


def _load_signing_key() -> None:
    """``then`` signs tokens inside the session's transaction. The keystore is loaded before
    that transaction opens, so that first keys, if they must be created, are committed on
    their own and never vanish with a rolled-back session while this process keeps them."""
    keystore.signing_key()


def start(
    user: Any,
    *,
    service: str,
    scopes: Iterable[str] = (),
    api_key: ApiKey | None = None,
    now: datetime | None = None,
    then: Callable[[Refreshed], Any] = _same,
) -> Any:
    """Open a session for ``user`` and issue the first refresh token of its family.

    A session opened with an API key ends when the key expires, if not before.
    ``then(refreshed)`` runs last inside the same transaction (a service mints its access
    token there, and may take a lock that it then holds for the commit alone), so if it
    fails no session is left behind. Returns what ``then`` returns.
    """
    # Keys first: a key created now is active before the session it signs begins.
    _load_signing_key()
    now = now or timezone.now()
    expires_at = now + timedelta(seconds=token_settings.SESSION_LIFETIME)
    if api_key is not None and api_key.expires_at is not None:
        expires_at = min(expires_at, api_key.expires_at)
    with transaction.atomic(using=router.db_for_write(Session)):
        session = Session.objects.create(
            user=user,
            service=service,
            api_key=api_key,
            scope=" ".join(scopes),
            created_at=now,
            expires_at=expires_at,
        )
        refreshed = _new_member(session, now)
        _record(audit.Action.TOKEN_ISSUED, session, now, detail={"scope": session.scope})
        return then(refreshed)


def rotate(
    raw_token: str,
    *,
    service: str,
    now: datetime | None = None,
    then: Callable[[Refreshed], Any] = _same,
) -> Any:
    """Exchange a refresh token for its successor, in the same session.

    ``then(refreshed)`` runs inside the rotation's transaction, so if it fails the presented
    token stays unused. Returns what ``then`` returns. Raises :class:`InvalidRefreshToken`, or
    :class:`RefreshTokenReused` after revoking the session when a token rotated more than
    ``REFRESH_REUSE_GRACE`` seconds ago comes back.
    """
    now = now or timezone.now()
    if not isinstance(raw_token, str) or not raw_token or len(raw_token) > 512:
        raise InvalidRefreshToken("Malformed refresh token.")
    token_hash = digest(raw_token)
    _load_signing_key()
    reused: Session | None = None
    # Only what the service's tokens need is joined: each further table costs the query's
    # planning on every refresh. A session with no API key reads ``api_key`` as None without
    # a query.
    related = ["session", "session__user"]
    if service == Session.Service.API_KEY:
        related += ["session__user__token_metadata", "session__api_key"]
    with transaction.atomic(using=router.db_for_write(RefreshToken)):
        try:
            member = (
                RefreshToken.objects.select_related(*related)
                .select_for_update(of=("session",))
                .get(token_hash=token_hash)
            )
        except RefreshToken.DoesNotExist:
            raise InvalidRefreshToken("Unknown refresh token.") from None
        session = member.session
        if (
            session.service != service
            or session.revoked_at is not None
            or session.expires_at <= now
            or member.expires_at <= now
            or not session.user.is_active
        ):
            raise InvalidRefreshToken("Refresh token expired or revoked.")
        # The session row is locked: this UPDATE sees every committed rotation of the family.
        won = RefreshToken.objects.filter(pk=member.pk, used_at__isnull=True).update(used_at=now)
        if won:
            result = then(_new_member(session, now))
            _record(audit.Action.TOKEN_REFRESHED, session, now)
            return result
        used_at = RefreshToken.objects.values_list("used_at", flat=True).get(pk=member.pk)
        grace = token_settings.REFRESH_REUSE_GRACE
        # ``now`` was read before the lock, so a request that raced the rotation can look
        # older than it: with no grace window, every second presentation is reuse.
        if grace > 0 and used_at is not None and now - used_at <= timedelta(seconds=grace):
            # A concurrent retry: its answer supersedes the successor issued a moment ago.
            RefreshToken.objects.filter(session=session, used_at__isnull=True).update(used_at=now)
            result = then(_new_member(session, now))
            _record(audit.Action.TOKEN_REFRESHED, session, now, detail={"retry": True})
            return result
        reused = session
        _record(audit.Action.REFRESH_REUSE_DETECTED, session, now, actor="")
        revoke_rows(Session.objects.filter(pk=session.pk), reason="refresh_token_reused", now=now)
    set_marks([str(reused.pk)], now=now)
    logger.warning("Refresh token reuse detected; session %s revoked.", reused.pk)
    raise RefreshTokenReused("Refresh token was already used; the session is revoked.")


def _record(
    action: str,
    session: Session,
    now: datetime,
    *,
    actor: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    audit.record(
        action,
        user=session.user,
        session=session,
        api_key=session.api_key,
        signing_kid=keystore.signing_key().kid,
        actor=actor,
        detail=detail,
        now=now,
    )


# -- revocation ----------------------------------------------------------------------------


def revoke_rows(sessions: QuerySet[Session], *, reason: str, now: datetime) -> list[str]:
    """The revocation's UPDATE alone, for a caller that owns the transaction; it writes the
    marks with :func:`set_marks` once the transaction is done.

    The live rows are locked first (in key order): a session that a concurrent revocation
    revokes meanwhile is no longer live once its lock is granted, so each session is revoked,
    counted and recorded once, whichever of the revocations gets it."""
    live = sessions.filter(revoked_at__isnull=True).select_for_update(of=("self",))
    ids = [str(pk) for pk in live.order_by("pk").values_list("pk", flat=True)]
    if ids:
        Session.objects.filter(pk__in=ids).update(revoked_at=now, revoke_reason=reason)
        audit.record_revoked_sessions(ids, reason=reason, now=now)
    return ids


def revoke_sessions(
    sessions: QuerySet[Session], *, reason: str = "revoked", now: datetime | None = None
) -> int:
    """Revoke every live session of ``sessions`` in one UPDATE and mark each as revoked."""
    now = now or timezone.now()
    with transaction.atomic(using=router.db_for_write(Session)):
        ids = revoke_rows(sessions, reason=reason, now=now)
    set_marks(ids, now=now)
    return len(ids)


def revoke_session(
    session_id: Any, *, reason: str = "revoked", now: datetime | None = None
) -> bool:
    return revoke_sessions(Session.objects.filter(pk=session_id), reason=reason, now=now) == 1


def revoke_user(user: Any, *, reason: str = "user_revoked", now: datetime | None = None) -> int:
    """Revoke all of a user's sessions (for example when an employee leaves)."""
    return revoke_sessions(Session.objects.filter(user=user), reason=reason, now=now)


# -- revocation marks ----------------------------------------------------------------------
#
# A mark in the shared cache says "this session is revoked". It lives as long as an access
# token can, so the cache never needs to hold it longer; a new login gets a new session id.


def _mark_key(session_id: str) -> str:
    return f"{MARK_PREFIX}:sid:{session_id}"


def set_marks(session_ids: Iterable[str], *, now: datetime) -> None:
    values = {_mark_key(sid): int(now.timestamp()) for sid in session_ids}
    if not values:
        return
    timeout = max_token_lifetime()
    try:
        revocation_feed.write_marks({key: (value, timeout) for key, value in values.items()})
    except Exception as exc:
        logger.error(
            "Could not write %d revocation mark(s): access tokens already issued stay valid "
            "until they expire. Refresh is refused regardless. %r",
            len(values),
            exc,
        )


def _token_mark_key(checksum: str) -> str:
    return f"{MARK_PREFIX}:at:{checksum}"


def token_checksum(raw_token: str | bytes) -> str:
    """SHA-256 hex of a token: the ``token_checksum`` django-oauth-toolkit stores."""
    if isinstance(raw_token, str):
        raw_token = raw_token.encode()
    return hashlib.sha256(raw_token).hexdigest()


def set_token_marks(expiries: Mapping[str, datetime], *, now: datetime) -> None:
    """Mark single access tokens revoked, by checksum, each until it expires (plus leeway).

    OAuth 2.0 access tokens belong to no session of this app: django-oauth-toolkit keeps a
    row per token, and deleting the row (revocation, rotation, reuse, a deleted client or
    user) marks the token so that resource servers refuse it without a query.
    """
    leeway = int(token_settings.LEEWAY)
    marks = {}
    for checksum, expires in expiries.items():
        remaining = int((expires - now).total_seconds()) + leeway + 1
        if remaining > 0:
            marks[_token_mark_key(checksum)] = (int(now.timestamp()), remaining)
    try:
        revocation_feed.write_marks(marks)
    except Exception as exc:
        logger.error(
            "Could not write %d access-token revocation mark(s): those tokens stay valid for "
            "JWTAuthentication until they expire. %r",
            len(expiries),
            exc,
        )


def is_revoked(claims: Mapping[str, Any], *, checksum: str | None = None) -> bool:
    """True when the token's session, or (given its ``checksum``) the token itself, carries
    a revocation mark. Tokens of a session are checked by ``sid``; OAuth 2.0 tokens, which
    carry ``client_id``, by checksum.

    An unreachable cache is not a mark: verification keeps working on signatures alone.
    """
    keys = []
    session_id = claims.get("sid")
    if session_id:
        keys.append(_mark_key(str(session_id)))
    if checksum and claims.get("client_id") is not None:
        keys.append(_token_mark_key(checksum))
    if not keys:
        return False
    try:
        return revocation_feed.is_revoked(keys)
    except Exception as exc:
        logger.warning("Revocation marks unreadable; verifying by signature only: %r", exc)
        return False
