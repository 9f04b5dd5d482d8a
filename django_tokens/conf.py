"""Settings for django-tokens, read from ``settings.DJANGO_TOKENS`` when used.

Every other module reads settings through :data:`token_settings`; nothing is read at import
time, so ``override_settings(DJANGO_TOKENS=...)`` takes effect without reloading anything.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SIGNING_ALGORITHMS = ("RS256", "RS512", "ES256", "EdDSA")

DEFAULTS: dict[str, Any] = {
    # Identity of the issuer. None: derived from the request (scheme://host), which suits
    # development; production deployments set it (system check django_tokens.W003).
    "ISSUER": None,
    # The ``aud`` claim of access tokens, and the audience JWTAuthentication accepts.
    "AUDIENCE": "django-tokens",
    "SIGNING_ALGORITHM": "RS256",
    # Lifetimes in seconds (an int or a timedelta).
    "ACCESS_TOKEN_LIFETIME": 3600,
    "REFRESH_TOKEN_LIFETIME": 14 * 24 * 3600,
    "SESSION_LIFETIME": 30 * 24 * 3600,
    # A rotated refresh token presented again within this many seconds is taken as a
    # client's concurrent retry, not as theft (RFC 9700 §4.14.2 allows for it).
    "REFRESH_REUSE_GRACE": 10,
    "LEEWAY": 30,
    # Scopes written into password-flow access tokens.
    "PASSWORD_SCOPES": ["profile", "email"],
    # API-key tokens (seed 000): lifetimes, the assertion rules, and the default scopes.
    "API_KEY_ACCESS_TOKEN_LIFETIME": 86400,
    "API_KEY_REFRESH_TOKEN_LIFETIME": 86400,
    "API_KEY_ASSERTION_MAX_AGE": 300,
    "API_KEY_REQUIRE_JTI": True,
    "API_KEY_SCOPES": ["openid", "email", "app_metadata", "user_metadata", "profile"],
    "API_KEY_ID_PREFIX": "dtk_",
    "THROTTLE_FAILURES_PER_KEY": 5,
    # OAuth 2.0 (seed 002): the scopes clients may ask for, with the words the consent page
    # shows, and the scopes granted when a client asks for none.
    "OAUTH2_SCOPES": {
        "openid": "Sign you in (OpenID Connect)",
        "profile": "See your name and username",
        "email": "See your email address",
        "read": "Read your data",
        "write": "Change your data",
    },
    "OAUTH2_DEFAULT_SCOPES": ["read"],
    # Where GET /oauth2/authorize sends users who are not signed in: a URL name or a path.
    # None: Django's LOGIN_URL (for projects with a sign-in page of their own).
    "OAUTH2_LOGIN_URL": "django_tokens:oauth2-login",
    # Import string of a callable(user, *, service, scopes) -> dict of extra claims.
    "CLAIMS_HOOK": None,
    # Failure throttles: at most N failures per window, counted in the shared cache.
    "THROTTLE_WINDOW": 300,
    "THROTTLE_FAILURES_PER_USERNAME": 5,
    "THROTTLE_FAILURES_PER_IP": 20,
    # Keys for encryption at rest (Fernet keys or any high-entropy strings), newest first.
    # Empty: one key derived from SECRET_KEY (system check django_tokens.W001).
    "ENCRYPTION_KEYS": [],
    # The Django cache that holds throttles, replay records, revocation marks and the
    # keystore's version stamp. It must be shared by every process (Redis in production).
    "CACHE_ALIAS": "default",
    # With a Redis cache: revocation marks are also published, and each process keeps those
    # it was told of, so verifying an access token reads Redis only for a mark it cannot
    # answer from that feed (django_tokens.revocation_feed).
    "REVOCATION_FEED": True,
    # How long a process trusts its loaded keystore before checking the shared version stamp.
    "KEYSTORE_CHECK_INTERVAL": 5,
    "JWKS_MAX_AGE": 300,
    # The audit trail (issuance, refresh, reuse, revocation, rotation), and how long
    # purge_tokens keeps its entries (0: for ever).
    "AUDIT": True,
    "AUDIT_RETENTION": 90 * 24 * 3600,
    # Services whose refresh token a browser keeps in an HttpOnly cookie rather than in the
    # JSON body ("password", "api_key"); see django_tokens.cookies. Empty: body mode only.
    "REFRESH_COOKIE_SERVICES": [],
    "REFRESH_COOKIE_NAME": "refresh_token",
}

DURATIONS = {
    "ACCESS_TOKEN_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "API_KEY_ACCESS_TOKEN_LIFETIME",
    "API_KEY_REFRESH_TOKEN_LIFETIME",
    "API_KEY_ASSERTION_MAX_AGE",
    "SESSION_LIFETIME",
    "REFRESH_REUSE_GRACE",
    "LEEWAY",
    "THROTTLE_WINDOW",
    "KEYSTORE_CHECK_INTERVAL",
    "JWKS_MAX_AGE",
    "AUDIT_RETENTION",
}
_IMPORT_STRINGS = {"CLAIMS_HOOK"}


def _seconds(value: Any) -> int:
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return int(value)


class TokenSettings:
    """Attribute access to ``DJANGO_TOKENS`` merged over :data:`DEFAULTS`.

    Durations come back as whole seconds and import strings as the objects they name.
    Values are cached per attribute until a ``setting_changed`` signal clears them.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, "DJANGO_TOKENS", None) or {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown django-tokens setting: {name!r}")
        try:
            return self._cache[name]
        except KeyError:
            pass
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in DURATIONS:
            value = _seconds(value)
        elif name in _IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        self._cache[name] = value
        return value

    def reload(self) -> None:
        self._cache.clear()
        max_token_lifetime.cache_clear()


token_settings = TokenSettings()


@cache
def max_token_lifetime() -> int:
    """The longest time a token signed now can stay valid: how long a retiring key is kept."""
    lifetimes = [
        token_settings.ACCESS_TOKEN_LIFETIME,
        token_settings.API_KEY_ACCESS_TOKEN_LIFETIME,
        token_settings.API_KEY_REFRESH_TOKEN_LIFETIME,
    ]
    if "oauth2_provider" in settings.INSTALLED_APPS:
        # OAuth tokens are signed by the same keys; DOT configures their lifetimes.
        from oauth2_provider.settings import oauth2_settings

        lifetimes += [
            int(oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS),
            int(oauth2_settings.ID_TOKEN_EXPIRE_SECONDS),
        ]
    return max(*lifetimes, 0) + token_settings.LEEWAY


@receiver(setting_changed)
def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in (
        "DJANGO_TOKENS",
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "CACHES",
        "OAUTH2_PROVIDER",
        "INSTALLED_APPS",
    ):
        token_settings.reload()
        from django_tokens import crypto, keystore

        crypto.secret_box.cache_clear()
        keystore.reset()
