"""Test settings: the example project's, with a fast password hasher.

``DATABASE_URL`` and ``REDIS_URL`` select PostgreSQL and Redis exactly as in the example
project; without them the suite runs on SQLite and the local-memory cache.
"""

import os

from example_project.settings import *  # noqa: F403

# The suite checks passwords hundreds of times; a fast hasher keeps it quick. Tests that
# measure hashing behaviour override this.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django_tokens.hashers.HighEntropySecretHasher",
]

DJANGO_TOKENS = {
    **DJANGO_TOKENS,  # noqa: F405
    "ISSUER": "http://testserver",
    "ENCRYPTION_KEYS": ["test-encryption-key-with-enough-entropy-0001"],
}

# Each test run gets its own Redis key space, so parallel runs and leftovers never collide.
# Server processes started by a test inherit the prefix through the environment.
# Under pytest-xdist each worker has a key space of its own (the controller's is inherited).
if "REDIS_URL" in os.environ:
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    _prefix = os.environ.get("DJANGO_TOKENS_TEST_CACHE_PREFIX", "")
    if not _prefix or not _prefix.endswith(f"-{_worker}"):
        _prefix = f"django-tokens-test-{os.getpid()}-{_worker}"
        os.environ["DJANGO_TOKENS_TEST_CACHE_PREFIX"] = _prefix
    CACHES["default"]["KEY_PREFIX"] = _prefix  # noqa: F405

# Django 6.1 sends mail through MAILERS and warns when it is not set; earlier versions ignore
# the setting. The test environment swaps each mailer for the local-memory outbox.
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
