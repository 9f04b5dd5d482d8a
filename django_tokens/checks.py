"""System checks: what is missing or unsafe in the configuration, and how to fix it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from django_tokens.conf import DEFAULTS, DURATIONS, SIGNING_ALGORITHMS
from django_tokens.crypto import encryption_keys_from_secret_key
from django_tokens.hashers import HighEntropySecretHasher

MAX_KEY_ID_PREFIX_LENGTH = 16

_PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    user_settings = getattr(settings, "DJANGO_TOKENS", {})
    if not isinstance(user_settings, dict):
        return [
            Error(
                "DJANGO_TOKENS must be a dict.",
                hint="Set DJANGO_TOKENS = {...} in your settings; see the README for the keys.",
                id="django_tokens.E001",
            )
        ]
    unknown = sorted(set(user_settings) - set(DEFAULTS))
    if unknown:
        messages.append(
            Error(
                f"DJANGO_TOKENS has unknown keys: {', '.join(unknown)}.",
                hint="Check the spelling against the settings reference in the README.",
                id="django_tokens.E002",
            )
        )
    algorithm = user_settings.get("SIGNING_ALGORITHM", DEFAULTS["SIGNING_ALGORITHM"])
    if algorithm not in SIGNING_ALGORITHMS:
        messages.append(
            Error(
                f"DJANGO_TOKENS['SIGNING_ALGORITHM'] is {algorithm!r}.",
                hint=f"Use one of: {', '.join(SIGNING_ALGORITHMS)}.",
                id="django_tokens.E003",
            )
        )
    hook = user_settings.get("CLAIMS_HOOK")
    if isinstance(hook, str):
        try:
            import_string(hook)
        except ImportError:
            messages.append(
                Error(
                    f"DJANGO_TOKENS['CLAIMS_HOOK'] {hook!r} cannot be imported.",
                    hint="Give the dotted path of a callable(user, *, service, scopes) -> dict.",
                    id="django_tokens.E004",
                )
            )
    keys = user_settings.get("ENCRYPTION_KEYS", [])
    if not isinstance(keys, list | tuple) or any(
        not isinstance(key, str) or len(key) < 32 for key in keys
    ):
        messages.append(
            Error(
                "DJANGO_TOKENS['ENCRYPTION_KEYS'] must be a list of strings of 32+ characters.",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="django_tokens.E005",
            )
        )
    elif encryption_keys_from_secret_key() and not settings.DEBUG:
        messages.append(
            Warning(
                "Secrets at rest are encrypted with a key derived from SECRET_KEY.",
                hint="Set DJANGO_TOKENS['ENCRYPTION_KEYS'] to a list of Fernet keys (newest "
                "first) kept apart from SECRET_KEY, then run manage.py reencrypt_secrets.",
                id="django_tokens.W001",
            )
        )
    alias = user_settings.get("CACHE_ALIAS", DEFAULTS["CACHE_ALIAS"])
    backend = settings.CACHES.get(alias, {}).get("BACKEND")
    if backend is None:
        messages.append(
            Error(
                f"DJANGO_TOKENS['CACHE_ALIAS'] names the cache {alias!r}, which CACHES lacks.",
                hint="Add it to CACHES or point CACHE_ALIAS at an existing cache.",
                id="django_tokens.E006",
            )
        )
    elif backend in _PROCESS_LOCAL_CACHES and not settings.DEBUG:
        messages.append(
            Warning(
                f"The cache {alias!r} is local to each process ({backend.rsplit('.', 1)[-1]}).",
                hint="Failure throttles, replay records and revocation marks must be shared by "
                "every server process: use django_tokens.cache.RedisCache (Django's Redis backend, "
                "one client per pool).",
                id="django_tokens.W002",
            )
        )
    if not user_settings.get("ISSUER") and not settings.DEBUG:
        messages.append(
            Warning(
                "DJANGO_TOKENS['ISSUER'] is not set; the issuer is taken from each request's Host.",
                hint="Set ISSUER to the public origin of the token service, e.g. "
                "'https://auth.example.com'.",
                id="django_tokens.W003",
            )
        )
    bad_durations = [
        name
        for name in sorted(DURATIONS & set(user_settings))
        if not _is_duration(user_settings[name])
    ]
    if bad_durations:
        messages.append(
            Error(
                f"DJANGO_TOKENS has durations that are not zero or more: "
                f"{', '.join(bad_durations)}.",
                hint="Give each as a number of seconds or a datetime.timedelta, not negative.",
                id="django_tokens.E011",
            )
        )
    prefix = user_settings.get("API_KEY_ID_PREFIX", DEFAULTS["API_KEY_ID_PREFIX"])
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_ID_PREFIX_LENGTH:
        messages.append(
            Error(
                "DJANGO_TOKENS['API_KEY_ID_PREFIX'] must be a string of at most "
                f"{MAX_KEY_ID_PREFIX_LENGTH} characters.",
                hint="Key ids are the prefix plus 24 random characters, and must fit in 64.",
                id="django_tokens.E008",
            )
        )
    messages.extend(_check_refresh_cookie(user_settings))
    messages.extend(_check_client_secret_hasher())
    messages.extend(_check_provider_hooks())
    if "rest_framework" not in settings.INSTALLED_APPS:
        messages.append(
            Error(
                "django-tokens needs Django REST framework.",
                hint="Add 'rest_framework' to INSTALLED_APPS.",
                id="django_tokens.E007",
            )
        )
    return messages


def _is_duration(value: Any) -> bool:
    if isinstance(value, timedelta):
        return value >= timedelta(0)
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


#: The OAUTH2_PROVIDER entries that make django-oauth-toolkit issue this app's tokens.
_PROVIDER_HOOKS = {
    "ACCESS_TOKEN_GENERATOR": "django_tokens.services.oauth2.generate_access_token",
    "OAUTH2_VALIDATOR_CLASS": "django_tokens.services.oauth2.KeystoreOAuth2Validator",
}


def _check_provider_hooks() -> list[CheckMessage]:
    """With django-oauth-toolkit installed, its tokens should come from the keystore."""
    if "oauth2_provider" not in settings.INSTALLED_APPS:
        return []
    provider = getattr(settings, "OAUTH2_PROVIDER", {}) or {}
    messages: list[CheckMessage] = []
    missing = sorted(name for name, path in _PROVIDER_HOOKS.items() if provider.get(name) != path)
    if missing:
        messages.append(
            Warning(
                f"OAUTH2_PROVIDER does not set {', '.join(missing)} to django-tokens' hooks: "
                "OAuth 2.0 tokens will not be JWTs from the keystore, and JWTAuthentication "
                "will not accept them.",
                hint="Set OAUTH2_PROVIDER = django_tokens.oauth2_config.provider_settings() "
                "(pass overrides as keyword arguments).",
                id="django_tokens.W004",
            )
        )
    if provider.get("OIDC_RSA_PRIVATE_KEY"):
        messages.append(
            Warning(
                "OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY'] is set, but ID tokens are signed by "
                "the keystore; the key in settings is a second key to guard for nothing.",
                hint="Remove OIDC_RSA_PRIVATE_KEY from OAUTH2_PROVIDER.",
                id="django_tokens.W005",
            )
        )
    return messages


def _check_client_secret_hasher() -> list[CheckMessage]:
    """DOT's CLIENT_SECRET_HASHER set to the fast hasher must find it in PASSWORD_HASHERS,
    and it must never be first there: that would hash user passwords fast too."""
    provider = getattr(settings, "OAUTH2_PROVIDER", {}) or {}
    if provider.get("CLIENT_SECRET_HASHER") != HighEntropySecretHasher.algorithm:
        return []
    hashers = list(getattr(settings, "PASSWORD_HASHERS", []))
    path = f"{HighEntropySecretHasher.__module__}.{HighEntropySecretHasher.__name__}"
    if path not in hashers:
        return [
            Error(
                "OAUTH2_PROVIDER['CLIENT_SECRET_HASHER'] is 'django_tokens_sha256', which "
                "PASSWORD_HASHERS does not list.",
                hint=f"Append '{path}' to PASSWORD_HASHERS (after your password hasher).",
                id="django_tokens.E009",
            )
        ]
    if hashers[0] == path:
        return [
            Error(
                "The client-secret hasher is first in PASSWORD_HASHERS, so user passwords "
                "would be hashed with one fast SHA-256.",
                hint="Put your password hasher (PBKDF2, Argon2 ...) first; append "
                f"'{path}' after it.",
                id="django_tokens.E010",
            )
        ]
    return []


_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _check_refresh_cookie(user_settings: dict[str, Any]) -> list[CheckMessage]:
    from django_tokens.cookies import REFRESH_URL_NAMES

    messages: list[CheckMessage] = []
    services = user_settings.get("REFRESH_COOKIE_SERVICES", [])
    if not isinstance(services, list | tuple) or any(s not in REFRESH_URL_NAMES for s in services):
        messages.append(
            Error(
                f"DJANGO_TOKENS['REFRESH_COOKIE_SERVICES'] is {services!r}.",
                hint=f"Give a list of services among: {', '.join(REFRESH_URL_NAMES)}.",
                id="django_tokens.E012",
            )
        )
        return messages
    name = user_settings.get("REFRESH_COOKIE_NAME", DEFAULTS["REFRESH_COOKIE_NAME"])
    if not isinstance(name, str) or not _COOKIE_NAME.match(name):
        messages.append(
            Error(
                f"DJANGO_TOKENS['REFRESH_COOKIE_NAME'] {name!r} is not a cookie name.",
                hint="Use letters, digits and - _ . only, e.g. 'refresh_token'.",
                id="django_tokens.E013",
            )
        )
    if (
        services
        and getattr(settings, "CORS_ALLOWED_ORIGINS", None)
        and not getattr(settings, "CORS_ALLOW_CREDENTIALS", False)
    ):
        messages.append(
            Warning(
                "The refresh-cookie mode is on and CORS_ALLOWED_ORIGINS lists front ends, "
                "but CORS_ALLOW_CREDENTIALS is off: their browsers will neither store nor "
                "send the refresh cookie.",
                hint="Set CORS_ALLOW_CREDENTIALS = True (django-cors-headers).",
                id="django_tokens.W006",
            )
        )
    return messages
