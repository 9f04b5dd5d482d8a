"""DRF authentication and permissions for APIs that consume this app's access tokens.

``JWTAuthentication`` extends djangorestframework-simplejwt's class of the same name: its
header parsing is kept, token validation uses this app's keystore (the key chosen by ``kid``,
its algorithm pinned) and the user is a :class:`TokenUser` built from the claims. Verifying a
token costs no database query; the revocation mark of its session comes from the cache, and
on Redis from the process's revocation feed without a round trip once known.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework_simplejwt import authentication as simplejwt_authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.models import TokenUser as SimpleJWTTokenUser

from django_tokens import jws, keystore, sessions
from django_tokens.conf import token_settings
from django_tokens.tokens import ACCESS_TOKEN_TYPE, issuer_for

_ACCESS_TOKEN_TYPES = {ACCESS_TOKEN_TYPE, f"application/{ACCESS_TOKEN_TYPE}"}


class VerifiedToken(dict[str, Any]):
    """The claims of a verified access token (``request.auth``), with its header."""

    def __init__(
        self, claims: Mapping[str, Any], header: Mapping[str, Any], raw: bytes | str = b""
    ):
        super().__init__(claims)
        self.header = dict(header)
        self._raw = raw

    @cached_property
    def checksum(self) -> str:
        """SHA-256 hex of the token as presented (django-oauth-toolkit's ``token_checksum``)."""
        return sessions.token_checksum(self._raw)

    @property
    def scopes(self) -> frozenset[str]:
        scope = self.get("scope")
        return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


class TokenUser(SimpleJWTTokenUser):
    """``request.user`` backed by the token's claims; the user row is read on first need.

    Attributes the claims carry (``pk``/``id`` from ``sub``, ``username`` from
    ``preferred_username``, any claim a claims hook added) cost nothing. Anything else, such
    as ``is_staff``, ``groups``, ``has_perm()`` or ``date_joined``, loads the user row once.
    """

    def __init__(self, token: Mapping[str, Any]) -> None:
        super().__init__(token)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return str(self.username)

    @cached_property
    def id(self) -> Any:
        return get_user_model()._meta.pk.to_python(self.token["sub"])

    @cached_property
    def pk(self) -> Any:
        return self.id

    @cached_property
    def username(self) -> str:
        claimed = self.token.get("preferred_username")
        return claimed if isinstance(claimed, str) else self.user.get_username()

    @cached_property
    def user(self) -> Any:
        """The user row, loaded once, when a view needs what the token does not carry."""
        model = get_user_model()
        try:
            return model._default_manager.get(pk=self.id)
        except model.DoesNotExist as exc:
            raise AuthenticationFailed("User not found", code="user_not_found") from exc

    def _claim_or_row(self, name: str) -> Any:
        """A claim when the token carries it, else the user row's attribute."""
        claimed = self.token.get(name)
        return claimed if claimed is not None else getattr(self.user, name)

    @cached_property
    def is_staff(self) -> bool:
        return bool(self._claim_or_row("is_staff"))

    @cached_property
    def is_superuser(self) -> bool:
        return bool(self._claim_or_row("is_superuser"))

    @property
    def groups(self) -> Any:
        return self.user.groups

    @property
    def user_permissions(self) -> Any:
        return self.user.user_permissions

    def get_group_permissions(self, obj: object | None = None) -> set[str]:
        return set(self.user.get_group_permissions(obj))

    def get_all_permissions(self, obj: object | None = None) -> set[str]:
        return set(self.user.get_all_permissions(obj))

    def has_perm(self, perm: str, obj: object | None = None) -> bool:
        return bool(self.user.has_perm(perm, obj))

    def has_perms(self, perm_list: Any, obj: object | None = None) -> bool:
        return bool(self.user.has_perms(perm_list, obj))

    def has_module_perms(self, module: str) -> bool:
        return bool(self.user.has_module_perms(module))

    is_client = False

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr in ("token", "user"):
            raise AttributeError(attr)
        if attr in self.token:
            return self.token[attr]
        return getattr(self.user, attr)


class ClientTokenUser(TokenUser):
    """``request.user`` for a token an OAuth client obtained for itself (client_credentials,
    RFC 9068 §2.2: ``sub`` is the client id). It is authenticated but has no user row."""

    is_client = True

    @cached_property
    def id(self) -> Any:
        return None

    @cached_property
    def username(self) -> str:
        return str(self.token["client_id"])

    @cached_property
    def user(self) -> Any:
        raise AuthenticationFailed(
            "This token belongs to an OAuth client, not a user.", code="client_token"
        )

    def __str__(self) -> str:
        return f"client {self.username}"


class JWTAuthentication(simplejwt_authentication.JWTAuthentication):
    """Accepts this app's access tokens (``typ: at+jwt``) and nothing else.

    One method per step, each overridable: :meth:`get_header` and :meth:`get_raw_token`
    (simplejwt's), :meth:`get_validated_token`, :meth:`is_revoked`, :meth:`get_user`.
    """

    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[TokenUser, VerifiedToken] | None:  # type: ignore[override]
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token, request=request)
        if self.is_revoked(token):
            raise InvalidToken({"detail": "Token has been revoked", "code": "token_revoked"})
        return self.get_user(token), token

    def get_validated_token(  # type: ignore[override]
        self, raw_token: bytes, request: Request | None = None
    ) -> VerifiedToken:
        try:
            header, claims = keystore.verify(
                raw_token,
                types=_ACCESS_TOKEN_TYPES,
                audience=token_settings.AUDIENCE,
                issuer=issuer_for(request),
                require=("exp", "iat", "iss", "aud", "sub", "jti"),
            )
        except jws.InvalidSignedToken as exc:
            raise InvalidToken({"detail": str(exc), "code": "token_not_valid"}) from exc
        return VerifiedToken(claims, header, raw_token)

    def is_revoked(self, token: VerifiedToken) -> bool:
        """The session's mark (``sid``), or for an OAuth 2.0 token its own mark: a token
        django-oauth-toolkit no longer holds (revoked, rotated away, client or user gone)."""
        checksum = token.checksum if token.get("client_id") is not None else None
        return sessions.is_revoked(token, checksum=checksum)

    def get_user(self, validated_token: VerifiedToken) -> TokenUser:  # type: ignore[override]
        """A client's own token has ``sub`` equal to ``client_id`` and names no user; a
        user's token names its user (``preferred_username``) even when the user's id and a
        hand-set client id are the same string."""
        client_id = validated_token.get("client_id")
        if (
            client_id is not None
            and validated_token.get("sub") == client_id
            and "preferred_username" not in validated_token
        ):
            return ClientTokenUser(validated_token)
        return TokenUser(validated_token)


class HasScope(BasePermission):
    """Grants access when the access token carries every scope in the view's ``required_scopes``.

    The view attribute follows django-oauth-toolkit's ``TokenHasScope`` convention.
    """

    message = "The access token lacks a required scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, VerifiedToken):
            return False
        required = getattr(view, "required_scopes", None)
        if required is None:
            raise ImproperlyConfigured(
                f"{type(view).__name__} uses HasScope but sets no required_scopes."
            )
        return set(required) <= token.scopes
