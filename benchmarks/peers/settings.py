"""Settings of the peer project: a ``startproject`` skeleton with djangorestframework-simplejwt
(RS256, refresh rotation with the blacklist app) and django-oauth-toolkit, as their docs set
them up. Shared with "ours": the database (imported from the example project, configured the
same way), the MD5 password hasher first and the query-counting middleware.

The RSA key pair comes from the environment (``BENCH_RSA_PRIVATE_KEY``/``BENCH_RSA_PUBLIC_KEY``,
PEM), generated per run by ``benchmarks/run.py``.
"""

import os
from datetime import timedelta

from example_project.settings import DATABASES  # noqa: F401  (the same database as ours)

SECRET_KEY = os.environ.get(
    "BENCH_PEER_SECRET_KEY", "benchmark-peer-only-insecure-secret-key-do-not-use-3f9a"
)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "oauth2_provider",
]

# Django's startproject stack, plus the benchmark's query counter (a no-op unless asked).
MIDDLEWARE = [
    "benchmarks.bench_common.QueryCountMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "benchmarks.peers.urls"
WSGI_APPLICATION = "benchmarks.peers.wsgi.application"

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

# Django's default list with the fast MD5 hasher first, as on ours: user passwords cost the
# same on both sides. PBKDF2 stays listed so that stock DOT's PBKDF2 client secret verifies.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# simplejwt's "Getting started": JWTAuthentication as the default authentication class.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": (
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ),
}

# simplejwt's settings page: RS256 with a PEM key pair, refresh tokens rotated on every use and
# the used one blacklisted. The access lifetime (default 5 minutes) is raised to one hour so
# that the tokens minted at the start outlive the run, as ours' (3600 s) do.
SIMPLE_JWT = {
    "ALGORITHM": "RS256",
    "SIGNING_KEY": os.environ.get("BENCH_RSA_PRIVATE_KEY", ""),
    "VERIFYING_KEY": os.environ.get("BENCH_RSA_PUBLIC_KEY", ""),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ACCESS_TOKEN_LIFETIME": timedelta(hours=1),
}

# DOT's tutorial: the default scopes. The client secret hasher is DOT's default ("default":
# the first of PASSWORD_HASHERS); the benchmark stores one application's secret with PBKDF2
# (what a stock project's default hasher gives) and another's with MD5.
OAUTH2_PROVIDER = {"SCOPES": {"read": "Read scope", "write": "Write scope"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
