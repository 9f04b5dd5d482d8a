"""Settings of the example project. Everything that differs per machine comes from the
environment: ``DATABASE_URL`` (SQLite by default), ``REDIS_URL`` (local memory by default),
``DEBUG``, ``ALLOWED_HOSTS``, ``DJANGO_SECRET_KEY``, ``TOKENS_ISSUER``, ``TOKENS_ENCRYPTION_KEYS``,
``TOKENS_REFRESH_COOKIE`` (services in the refresh-cookie mode) and ``CORS_ALLOWED_ORIGINS``.
"""

import os
from pathlib import Path

import dj_database_url

from django_tokens.oauth2_config import provider_settings

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EXAMPLE_VAR_DIR", BASE_DIR / "var"))


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "example-only-insecure-secret-key-do-not-use-in-production-8c1f"
)
DEBUG = os.environ.get("DEBUG", "1").lower() in ("1", "true", "yes", "on")
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "corsheaders",
    "oauth2_provider",
    "django_tokens",
    "example_project.demo",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'example.sqlite3'}",
        conn_max_age=60,
        # A kept connection that the database dropped meanwhile (a restart, a failover, an
        # idle timeout) is replaced before a request uses it, instead of failing that request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Writers queue up instead of failing with "database is locked" under concurrent requests.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django_tokens.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            # A Redis that hangs costs a request at most a second per call before the token
            # endpoints answer 503 (redis-py 5 waits forever by default, later versions 5 s).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Django's default hashers for passwords, plus the one DOT uses for generated client secrets
# (never first: user passwords keep the slow default).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django_tokens.hashers.HighEntropySecretHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["django_tokens.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django-tokens example",
    "DESCRIPTION": "Password tokens, JWKS and a protected resource.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The OAuth 2.0 endpoints are django-oauth-toolkit's views: this hook documents them.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "django_tokens.schema.oauth2_operations",
    ],
}

DJANGO_TOKENS = {
    "ISSUER": os.environ.get("TOKENS_ISSUER") or None,
    "CLAIMS_HOOK": "example_project.demo.claims.seed_claims",
    "ENCRYPTION_KEYS": _env_list("TOKENS_ENCRYPTION_KEYS", ""),
    # "password" and/or "api_key": their refresh tokens live in an HttpOnly cookie.
    "REFRESH_COOKIE_SERVICES": _env_list("TOKENS_REFRESH_COOKIE", ""),
}

OAUTH2_PROVIDER = provider_settings()

# Front ends on other origins (django-cors-headers): the token endpoints, the JWKS and the
# example's API answer them; credentials (the refresh cookie) only for these origins.
CORS_ALLOWED_ORIGINS = _env_list("CORS_ALLOWED_ORIGINS", "http://127.0.0.1:8001")
CORS_ALLOW_CREDENTIALS = True
CORS_URLS_REGEX = r"^/(api|auth|oauth2|\.well-known)/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
