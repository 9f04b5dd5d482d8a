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
if "REDIS_URL" in os.environ:
    CACHES["default"]["KEY_PREFIX"] = os.environ.setdefault(  # noqa: F405
        "DJANGO_TOKENS_TEST_CACHE_PREFIX", f"django-tokens-test-{os.getpid()}"
    )
