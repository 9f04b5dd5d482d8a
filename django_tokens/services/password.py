"""Password tokens (seed 001, "Generate Token"): username + password in, bearer tokens out.

The access token is a JWT from the keystore; the refresh token is opaque (256 random bits)
and rotates on every use through :mod:`django_tokens.sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import authenticate
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from django_tokens import sessions, throttling
from django_tokens.conf import token_settings
from django_tokens.errors import InvalidCredentials, InvalidGrant
from django_tokens.models import Session
from django_tokens.tokens import issue_access_token

SERVICE = Session.Service.PASSWORD


@dataclass(frozen=True)
class TokenResult:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(repr=False)
    #: Not in the seed's body: the lifetime of the refresh cookie in the cookie mode.
    refresh_expires_in: int = 0


def _issue(user: Any, refreshed: sessions.Refreshed, *, issuer: str) -> TokenResult:
    session = refreshed.session
    access = issue_access_token(
        user, session_id=str(session.pk), scopes=session.scopes, service=SERVICE, issuer=issuer
    )
    return TokenResult(
        access_token=access.token,
        expires_in=access.expires_in,
        refresh_token=refreshed.refresh_token,
        refresh_expires_in=max(
            0, int((refreshed.refresh_expires_at - timezone.now()).total_seconds())
        ),
    )


@sensitive_variables()
def obtain(
    username: str, password: str, *, issuer: str, client_ip: str | None, request: Any = None
) -> TokenResult:
    """Check the credentials through Django's authentication backends and open a session.

    Unknown users, wrong passwords and inactive users fail alike; ``ModelBackend`` runs the
    password hasher for unknown users too, so the timing does not tell them apart.
    """
    limit = token_settings.THROTTLE_FAILURES_PER_USERNAME
    with throttling.counting_failures(
        throttling.buckets_for("username", username, limit, client_ip)
    ):
        user = authenticate(request, username=username, password=password)
        if user is None or not user.is_active:
            raise InvalidCredentials()
    result: TokenResult = sessions.start(
        user,
        service=SERVICE,
        scopes=token_settings.PASSWORD_SCOPES,
        then=lambda refreshed: _issue(user, refreshed, issuer=issuer),
    )
    return result


@sensitive_variables()
def refresh(refresh_token: str, *, issuer: str) -> TokenResult:
    """Rotate the refresh token and mint a new access token in the same session."""
    try:
        result: TokenResult = sessions.rotate(
            refresh_token,
            service=SERVICE,
            then=lambda refreshed: _issue(refreshed.session.user, refreshed, issuer=issuer),
        )
    except sessions.InvalidRefreshToken as exc:
        raise InvalidGrant() from exc
    return result
