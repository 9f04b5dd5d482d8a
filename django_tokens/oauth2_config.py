"""Configuration for django-oauth-toolkit, importable from a settings module.

``OAUTH2_PROVIDER = provider_settings()`` plugs this app's keystore, scopes and hashers into
DOT (see :mod:`django_tokens.services.oauth2`). Nothing here imports models.
"""

from __future__ import annotations

from typing import Any


def provider_settings(**overrides: Any) -> dict[str, Any]:
    """The ``OAUTH2_PROVIDER`` setting for DOT, with this app's hooks; ``overrides`` win."""
    return {
        "ACCESS_TOKEN_GENERATOR": "django_tokens.services.oauth2.generate_access_token",
        # Refresh tokens stay opaque random strings (oauthlib would reuse the JWT generator).
        "REFRESH_TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
        "OAUTH2_VALIDATOR_CLASS": "django_tokens.services.oauth2.KeystoreOAuth2Validator",
        "SCOPES_BACKEND_CLASS": "django_tokens.services.oauth2.TokenSettingsScopes",
        "CLIENT_SECRET_HASHER": "django_tokens_sha256",
        "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
        "ID_TOKEN_EXPIRE_SECONDS": 3600,
        # The seed's three grants only: the password grant would let any client test user
        # passwords past this app's throttles (RFC 9700 §2.4 forbids it).
        "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
        # Only digests of tokens are stored (RFC 9700 §4.14). Reuse of a rotated refresh
        # token revokes its family, except for a retry within DJANGO_TOKENS'
        # REFRESH_REUSE_GRACE, as in the other services (KeystoreOAuth2Validator).
        "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
        "ROTATE_REFRESH_TOKEN": True,
        # A refresh token unused for 14 days after its access token expired is dead (the
        # password service's REFRESH_TOKEN_LIFETIME); without it DOT's never expire.
        "REFRESH_TOKEN_EXPIRE_SECONDS": 14 * 24 * 3600,
        "PKCE_REQUIRED": True,
        # S256 only: the "plain" method protects nothing against a stolen code (RFC 9700 §2.1.1).
        "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
        # OpenID Connect: ID tokens and userinfo. They are signed by the keystore, so no
        # OIDC_RSA_PRIVATE_KEY is set; an application's "algorithm" field is not used.
        "OIDC_ENABLED": True,
        "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
        "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
        "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
        # DOT's application admin with client secrets generated on save and shown once.
        "APPLICATION_ADMIN_CLASS": "django_tokens.oauth2_admin.ApplicationAdmin",
        **overrides,
    }
