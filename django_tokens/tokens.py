"""Access tokens: the claims every service puts in them, signed by the keystore's active key.

Access tokens follow the JWT profile for OAuth 2.0 access tokens (RFC 9068): header
``typ: at+jwt``; claims ``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``jti``, plus ``sid`` (the
session, for revocation), ``scope``, and whatever ``CLAIMS_HOOK`` adds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from django_tokens import jws, keystore
from django_tokens.conf import token_settings
from django_tokens.models import UserMetadata

ACCESS_TOKEN_TYPE = "at+jwt"

#: Claims the service owns; a claims hook cannot override them.
REGISTERED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "scope", "client_id", "typ", "azp"}
)


@dataclass(frozen=True)
class AccessToken:
    token: str
    claims: dict[str, Any]
    expires_in: int


def issuer_for(request: HttpRequest | None) -> str:
    """``ISSUER`` when set, else the request's own origin (development)."""
    configured = token_settings.ISSUER
    if configured:
        return str(configured)
    if request is None:
        return "django-tokens"
    return f"{request.scheme}://{request.get_host()}"


def hook_claims(user: Any, *, service: str, scopes: list[str]) -> dict[str, Any]:
    hook = token_settings.CLAIMS_HOOK
    if hook is None:
        return {}
    extra = hook(user, service=service, scopes=scopes)
    return {name: value for name, value in (extra or {}).items() if name not in REGISTERED_CLAIMS}


def issue_access_token(
    user: Any,
    *,
    session_id: str | None,
    scopes: Iterable[str],
    service: str,
    issuer: str,
    lifetime: int | None = None,
    extra: Mapping[str, Any] | None = None,
    subject: str | None = None,
    now: datetime | None = None,
) -> AccessToken:
    """An RFC 9068 access token for ``user``, or for ``subject`` when no user is involved
    (an OAuth client acting for itself). ``extra`` claims (``azp``, ``client_id`` …) are the
    caller's; the claims hook adds its claims for users only."""
    key = keystore.signing_key()
    scopes = list(scopes)
    lifetime = token_settings.ACCESS_TOKEN_LIFETIME if lifetime is None else lifetime
    issued_at = int((now or timezone.now()).timestamp())
    claims: dict[str, Any] = {}
    if user is not None:
        claims["preferred_username"] = user.get_username()
        claims.update(hook_claims(user, service=service, scopes=scopes))
        subject = str(user.pk)
    if not subject:
        raise ValueError("An access token needs a user or a subject.")
    claims.update(extra or {})
    claims.update(
        iss=issuer,
        sub=subject,
        aud=token_settings.AUDIENCE,
        iat=issued_at,
        exp=issued_at + lifetime,
        jti=uuid.uuid4().hex,
        scope=" ".join(scopes),
    )
    if session_id is not None:
        claims["sid"] = session_id
    token = jws.sign(claims, key.private_key, key.algorithm, kid=key.kid, typ=ACCESS_TOKEN_TYPE)
    return AccessToken(token, claims, lifetime)


#: The ``typ`` claim of refresh JWTs (Keycloak's convention); their header ``typ`` is "JWT".
REFRESH_TOKEN_CLAIM_TYPE = "Refresh"


def issue_refresh_jwt(
    user: Any,
    *,
    session_id: str,
    secret: str,
    issuer: str,
    expires_at: datetime,
    now: datetime | None = None,
) -> str:
    """A refresh token in JWT form. Its ``jti`` is the opaque refresh secret that
    :mod:`django_tokens.sessions` tracks by digest, so the JWT rotates and can be revoked."""
    key = keystore.signing_key()
    issued_at = int((now or timezone.now()).timestamp())
    claims = {
        "iss": issuer,
        "sub": str(user.pk),
        "aud": issuer,
        "iat": issued_at,
        "exp": int(expires_at.timestamp()),
        "jti": secret,
        "sid": session_id,
        "typ": REFRESH_TOKEN_CLAIM_TYPE,
    }
    return jws.sign(claims, key.private_key, key.algorithm, kid=key.kid, typ="JWT")


def identity_claims(user: Any, scopes: Iterable[str], metadata: Any = None) -> dict[str, Any]:
    """The claims about ``user`` that ``scopes`` grant (OIDC Core §5.4), for ID tokens and
    the userinfo endpoint: ``email`` -> email, email_verified; ``profile`` -> name,
    preferred_username; ``app_metadata`` / ``user_metadata`` -> those objects from
    :class:`~django_tokens.models.UserMetadata` (``metadata``, None when the user has none)."""
    scopes = set(scopes)
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = bool(metadata and metadata.email_verified)
    if "profile" in scopes:
        claims["name"] = user.get_full_name() or user.get_username()
        claims["preferred_username"] = user.get_username()
    if "app_metadata" in scopes:
        claims["app_metadata"] = dict(metadata.app_metadata) if metadata else {}
    if "user_metadata" in scopes:
        claims["user_metadata"] = dict(metadata.user_metadata) if metadata else {}
    return claims


#: Scopes whose claims come from the user's UserMetadata row.
METADATA_SCOPES = frozenset({"email", "app_metadata", "user_metadata"})


def metadata_for(user: Any, scopes: Iterable[str]) -> Any:
    """The user's :class:`~django_tokens.models.UserMetadata`, read only when a scope needs it
    (no query when the user was loaded with ``select_related(...token_metadata)``)."""
    if METADATA_SCOPES.isdisjoint(scopes):
        return None
    try:
        return user.token_metadata
    except UserMetadata.DoesNotExist:
        return None


#: Claims :func:`identity_claims` can add, by the scope that grants them.
IDENTITY_CLAIMS = {
    "email": ("email", "email_verified"),
    "profile": ("name", "preferred_username"),
    "app_metadata": ("app_metadata",),
    "user_metadata": ("user_metadata",),
}


def issue_id_token(
    user: Any,
    *,
    session_id: str,
    scopes: Iterable[str],
    issuer: str,
    audience: str,
    auth_time: datetime,
    lifetime: int,
    metadata: Any = None,
    now: datetime | None = None,
) -> str:
    """An OpenID Connect ID token (OIDC Core §2) with the claims the scopes grant
    (:func:`identity_claims`)."""
    key = keystore.signing_key()
    scopes = set(scopes)
    issued_at = int((now or timezone.now()).timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user.pk),
        "aud": audience,
        "azp": audience,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "auth_time": int(auth_time.timestamp()),
        "sid": session_id,
    }
    claims.update(identity_claims(user, scopes, metadata))
    return jws.sign(claims, key.private_key, key.algorithm, kid=key.kid, typ="JWT")
