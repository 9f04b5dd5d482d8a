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

from typing import Any

from django.db import router, transaction
from django.http import HttpRequest
from oauth2_provider.models import get_id_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes

from django_tokens import jws, keystore
from django_tokens.conf import token_settings
from django_tokens.models import Session
from django_tokens.tokens import issue_access_token, issuer_for

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


class TokenSettingsScopes(BaseScopes):
    """Scopes and their descriptions from ``DJANGO_TOKENS["OAUTH2_SCOPES"]``."""

    def get_all_scopes(self) -> dict[str, str]:
        return dict(token_settings.OAUTH2_SCOPES)

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(token_settings.OAUTH2_SCOPES)

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(token_settings.OAUTH2_DEFAULT_SCOPES)


class KeystoreOAuth2Validator(OAuth2Validator):
    """DOT's validator with ID tokens signed by the keystore's active key."""

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
