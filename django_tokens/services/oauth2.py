"""OAuth 2.0 (seed 002) on django-oauth-toolkit, through its documented hooks.

DOT and oauthlib run the protocol: client authentication, grants, PKCE, codes, refresh
rotation. This module plugs in what makes the tokens this app's:

- :func:`generate_access_token` — ``OAUTH2_PROVIDER["ACCESS_TOKEN_GENERATOR"]``: access
  tokens are RFC 9068 JWTs signed by the keystore, verifiable offline with the JWKS and by
  :class:`~django_tokens.authentication.JWTAuthentication` without a query;
- :class:`KeystoreOAuth2Validator` — ``OAUTH2_VALIDATOR_CLASS``: ID tokens are signed by the
  same keystore (no ``OIDC_RSA_PRIVATE_KEY`` in settings);
- :class:`TokenSettingsScopes` — ``SCOPES_BACKEND_CLASS``: scopes from ``DJANGO_TOKENS``.

:func:`django_tokens.oauth2_config.provider_settings` returns the ``OAUTH2_PROVIDER`` dict
that wires them up.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from django.db import router, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_id_token_model,
    get_refresh_token_model,
    refresh_token_expire_timedelta,
)
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes
from oauthlib.oauth2.rfc6749 import errors as oauthlib_errors

from django_tokens import audit, jws, keystore
from django_tokens.conf import token_settings
from django_tokens.models import Session
from django_tokens.tokens import (
    IDENTITY_CLAIMS,
    identity_claims,
    issue_access_token,
    issuer_for,
    metadata_for,
)

logger = logging.getLogger(__name__)

SERVICE = Session.Service.OAUTH2


class _SchemedRequest(HttpRequest):
    def __init__(self, meta: dict[str, Any], secure: bool) -> None:
        super().__init__()
        self.META = meta
        self._secure = secure

    def _get_scheme(self) -> str:
        return "https" if self._secure else "http"


def _issuer(request: Any) -> str:
    """``issuer_for`` of the Django request behind an oauthlib request (DOT passes a copy of
    its ``META`` as the headers, and marks HTTPS with ``X_DJANGO_OAUTH_TOOLKIT_SECURE``)."""
    if token_settings.ISSUER:
        return str(token_settings.ISSUER)
    headers = dict(request.headers)
    return issuer_for(_SchemedRequest(headers, bool(headers.get("X_DJANGO_OAUTH_TOOLKIT_SECURE"))))


def generate_access_token(request: Any) -> str:
    """DOT's ``ACCESS_TOKEN_GENERATOR``: an RFC 9068 JWT for the oauthlib ``request``.

    ``sub`` is the user, or the client itself for ``client_credentials``; ``exp`` matches the
    ``expires_in`` oauthlib puts in the response.
    """
    client = request.client
    access = issue_access_token(
        request.user,
        session_id=None,
        scopes=request.scopes or [],
        service=SERVICE,
        issuer=_issuer(request),
        lifetime=int(request.expires_in),
        extra={"client_id": client.client_id},
        subject=client.client_id,
    )
    return access.token


#: The signed-in user of the authorization request being validated (oauthlib's request
#: does not carry it): see :func:`authorizing`.
_authorizing_user: ContextVar[Any] = ContextVar("django_tokens_authorizing_user", default=None)


@contextmanager
def authorizing(user: Any) -> Iterator[None]:
    """Validate an authorization request on behalf of ``user``, the signed-in user."""
    reset = _authorizing_user.set(user)
    try:
        yield
    finally:
        _authorizing_user.reset(reset)


def hinted_subject(hint: str, *, client_id: str, issuer: str) -> str | None:
    """The ``sub`` of ``hint`` if it is an ID token this keystore signed for ``client_id``
    at ``issuer``, expired or not; else None."""
    try:
        _header, claims = keystore.verify(
            hint, types={"JWT"}, audience=client_id, issuer=issuer, require=("sub", "aud", "iss")
        )
    except jws.ExpiredSignedToken:
        # The signature held (it is checked first); expiry is checked before iss and aud.
        claims = jws.unverified_claims(hint)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != issuer or client_id not in audiences:
            return None
    except jws.InvalidSignedToken:
        return None
    subject = claims.get("sub")
    if claims.get("typ") is not None or not isinstance(subject, str):
        return None  # a refresh JWT, or no subject
    return subject


class _RetryBecameReuse(Exception):
    def __init__(self, rt: Any) -> None:
        super().__init__("refresh token reused")
        self.rt = rt


class TokenSettingsScopes(BaseScopes):
    """Scopes and their descriptions from ``DJANGO_TOKENS["OAUTH2_SCOPES"]``."""

    def get_all_scopes(self) -> dict[str, str]:
        return dict(token_settings.OAUTH2_SCOPES)

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        scopes = list(token_settings.OAUTH2_SCOPES)
        if getattr(request, "grant_type", None) == "client_credentials":
            # OpenID Connect is about a user; a client acting for itself has none.
            scopes = [scope for scope in scopes if scope != "openid"]
        return scopes

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(token_settings.OAUTH2_DEFAULT_SCOPES)


class KeystoreOAuth2Validator(OAuth2Validator):
    """DOT's validator with ID tokens signed by the keystore's active key, identity claims
    from :func:`~django_tokens.tokens.identity_claims`, and the refresh-token reuse rules of
    :mod:`django_tokens.sessions`.

    Refresh tokens rotate (DOT's ``ROTATE_REFRESH_TOKEN``) and a rotated one presented again
    revokes its family (with DOT's ``RefreshToken.revoke_family``), except within
    ``DJANGO_TOKENS["REFRESH_REUSE_GRACE"]`` seconds of its rotation, while its successor is
    the family's live member: that is a client's retry, and it is answered with a fresh pair
    that *supersedes* the successor, so a family never has two live members. (DOT's own
    grace period answers with the previous tokens, which hashed token storage cannot do.)
    """

    def finalize_id_token(
        self, id_token: dict, token: Any, token_handler: Any, request: Any
    ) -> str:
        claims, expiration_time = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        key = keystore.signing_key()
        signed = jws.sign(id_token, key.private_key, key.algorithm, kid=key.kid, typ="JWT")
        with transaction.atomic(using=router.db_for_write(get_id_token_model())):
            saved = self._save_id_token(id_token["jti"], request, expiration_time)
        request.access_token = saved
        request.id_token = saved
        return signed

    def get_oidc_issuer_endpoint(self, request: Any) -> str:
        return _issuer(request)

    def validate_jwt_bearer_token(self, token: str, scopes: Any, request: Any) -> bool:
        """A bearer token that looks like a JWT is an access token here. (With OpenID
        Connect on, oauthlib sends JWT-shaped bearer tokens to this method, which DOT
        answers by checking ID tokens: its ``OAuth2Authentication`` would refuse every
        access token of this app and accept ID tokens instead.)"""
        return bool(self.validate_bearer_token(token, scopes, request))

    # -- ID tokens and claims --------------------------------------------------------------

    def _load_id_token(self, token: str) -> Any:
        """The stored ID token for a keystore-signed ``token`` (DOT verifies with the
        application's own key, which this app does not use)."""
        try:
            _header, claims = keystore.verify(
                token, types={"JWT"}, audience=None, issuer=None, require=("jti", "aud")
            )
        except jws.InvalidSignedToken:
            return None
        return get_id_token_model().objects.filter(jti=claims["jti"]).first()

    def get_oidc_claims(self, token: Any, token_handler: Any, request: Any) -> dict[str, Any]:
        user = request.user
        scopes = list(request.scopes or [])
        return {"sub": str(user.pk), **identity_claims(user, scopes, metadata_for(user, scopes))}

    def get_discovery_claims(self, request: Any) -> list[str]:
        offered = token_settings.OAUTH2_SCOPES
        return ["sub"] + [
            claim
            for scope, claims in IDENTITY_CLAIMS.items()
            if scope in offered
            for claim in claims
        ]

    # -- OpenID Connect: prompt=none and id_token_hint (OIDC Core §3.1.2.1) ---------------

    def validate_silent_login(self, request: Any) -> bool:
        """``prompt=none``: the authorization view runs only for a signed-in user
        (django-oauth-toolkit answers anyone else ``login_required`` itself)."""
        return True

    def validate_silent_authorization(self, request: Any) -> bool:
        """``prompt=none``: consent is the view's to decide; it answers
        ``consent_required`` where it would show the consent page."""
        return True

    def validate_user_match(
        self, id_token_hint: Any, scopes: Any, claims: Any, request: Any
    ) -> bool:
        """An ``id_token_hint``, when given, must be an ID token this server signed for this
        client about the signed-in user (an expired one is still a hint); else the request
        is answered ``login_required``. It is verified with the keystore alone: its headers
        name no key to fetch."""
        if not id_token_hint:
            return True
        user = _authorizing_user.get()
        subject = hinted_subject(
            str(id_token_hint), client_id=str(request.client_id), issuer=_issuer(request)
        )
        return user is not None and subject is not None and subject == str(user.pk)

    # -- refresh tokens: the reuse rules of django_tokens.sessions -------------------------

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        """DOT's checks, decided on one read of the token's row, with this app's grace rule.

        A live token is accepted (DOT's idle expiry and orphan checks apply). A rotated one
        is accepted as a retry while it is within ``REFRESH_REUSE_GRACE`` of its rotation and
        its successor is still the family's live member; any other revoked token is reuse,
        and its family is revoked. (Asking DOT after reading the row would let a rotation
        committed in between pass for reuse.)
        """
        if not isinstance(refresh_token, str) or not refresh_token:
            return False
        checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
        rt = (
            get_refresh_token_model()
            .objects.filter(token_checksum=checksum)
            .select_related("access_token", "user")
            .order_by(F("revoked").desc(nulls_first=True))
            .first()
        )
        if rt is None:
            return False
        if rt.revoked is not None:
            if not self._is_retry(rt):
                if self._family_has_live_tokens(rt):
                    self._revoke_reused(rt)
                return False
        elif rt.access_token is None:
            return False  # an orphan: its access token was deleted out of band
        else:
            expire_delta = refresh_token_expire_timedelta()
            if expire_delta and rt.access_token.expires + expire_delta <= timezone.now():
                return False
        if not rt.user.is_active:
            return False
        request.user = rt.user
        # The raw token as presented: under hashed storage the stored column is blank.
        request.refresh_token = refresh_token
        request.refresh_token_instance = rt
        return bool(rt.application_id == getattr(client, "pk", None))

    def _is_retry(self, rt: Any) -> bool:
        """Rotated less than the grace window ago, and its successor (the access token minted
        from it, and that token's refresh token) still the live member of the family."""
        return self._within_grace(rt) and self._live_successor(rt).exists()

    @staticmethod
    def _within_grace(rt: Any) -> bool:
        grace = token_settings.REFRESH_REUSE_GRACE
        return grace > 0 and rt.revoked >= timezone.now() - timedelta(seconds=grace)

    @staticmethod
    def _live_successor(rt: Any) -> Any:
        return get_refresh_token_model().objects.filter(
            token_family=rt.token_family,
            revoked__isnull=True,
            access_token__source_refresh_token=rt,
        )

    @staticmethod
    def _family_has_live_tokens(rt: Any) -> bool:
        """Whether reuse of ``rt`` leaves anything to revoke. A family already revoked
        (reuse detected before, the grant revoked, the user deactivated) is answered
        ``invalid_grant`` with no write, as the other services answer a revoked session's
        refresh token: replaying a dead token must not grow the audit trail. A token of no
        family has nothing to look at: its reuse is recorded."""
        if not rt.token_family:
            return True
        family = get_refresh_token_model().objects.filter(token_family=rt.token_family)
        return bool(family.filter(Q(revoked__isnull=True) | Q(access_token__isnull=False)).exists())

    def _revoke_reused(self, rt: Any) -> None:
        if rt.token_family:
            get_refresh_token_model().revoke_family(rt.token_family)
        audit.record(
            audit.Action.REFRESH_REUSE_DETECTED,
            user=rt.user,
            client_id=rt.application.client_id,
            actor="",
            detail={"token_family": str(rt.token_family) if rt.token_family else None},
        )
        logger.warning("Refresh token reuse detected; OAuth 2.0 token family revoked.")

    def get_original_scopes(
        self, refresh_token: str, request: Any, *args: Any, **kwargs: Any
    ) -> Any:
        rt = request.refresh_token_instance
        if rt.revoked is None:
            return super().get_original_scopes(refresh_token, request, *args, **kwargs)
        # A retry: the scope its successor was granted.
        successor = (
            get_access_token_model()
            .objects.filter(source_refresh_token=rt)
            .values_list("scope", flat=True)
            .first()
        )
        return successor.split() if successor else []

    def save_bearer_token(self, token: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().save_bearer_token(token, request, *args, **kwargs)
        except _RetryBecameReuse as reuse:
            # The token transaction is rolled back; the family's revocation is committed.
            self._revoke_reused(reuse.rt)
            raise oauthlib_errors.InvalidGrantError(request=request) from None

    def _save_bearer_token(self, token: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        refreshing = request.grant_type == "refresh_token"
        if refreshing and request.refresh_token_instance is not None:
            self._lock_presented_token(request)
        saved = super()._save_bearer_token(token, request, *args, **kwargs)
        # In the token transaction: no entry without its tokens, nor tokens without one.
        client_id = request.client.client_id
        audit.record(
            audit.Action.TOKEN_REFRESHED if refreshing else audit.Action.TOKEN_ISSUED,
            user=request.user if getattr(request.user, "pk", None) is not None else None,
            client_id=client_id,
            signing_kid=keystore.signing_key().kid,
            actor=f"client:{client_id}",
            detail={"grant_type": request.grant_type, "scope": token.get("scope", "")},
        )
        return saved

    def revoke_token(
        self, token: str, token_type_hint: Any, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        """DOT's revocation (RFC 7009), recorded in the audit trail when a token of the
        client's was found."""
        checksum = hashlib.sha256(token.encode()).hexdigest()
        client_pk = getattr(request.client, "pk", None)
        found = client_pk is not None and any(
            model.objects.filter(token_checksum=checksum, application_id=client_pk).exists()
            for model in (get_access_token_model(), get_refresh_token_model())
        )
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        if found:
            client_id = request.client.client_id
            audit.record(
                audit.Action.OAUTH2_TOKEN_REVOKED,
                client_id=client_id,
                actor=f"client:{client_id}",
                detail={"token_type_hint": token_type_hint or None},
            )

    def _lock_presented_token(self, request: Any) -> None:
        """Inside the token transaction: lock the presented refresh token. If it has been
        rotated meanwhile, or was a retry from the start, revoke its live successor, so
        that DOT mints a fresh pair in the family from it and the family keeps one live
        member; if that successor has meanwhile been rotated itself, this is reuse. Rows
        are locked in DOT's order: refresh tokens, then access tokens."""
        refresh_model = get_refresh_token_model()
        presented = refresh_model.objects.select_for_update().get(
            pk=request.refresh_token_instance.pk
        )
        request.refresh_token_instance = presented
        if presented.revoked is None:
            return
        successor = self._live_successor(presented).select_for_update().first()
        if successor is None or not self._within_grace(presented):
            raise _RetryBecameReuse(presented)
        successor.revoke()
        # DOT's _save_bearer_token looks for an access token minted from ``presented`` and,
        # finding none now, mints a fresh pair from it in the same family.
