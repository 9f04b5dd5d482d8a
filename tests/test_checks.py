from datetime import timedelta

import pytest
from django.conf import settings
from django.core import checks
from django.test import override_settings

from django_tokens.checks import check_settings
from django_tokens.oauth2_config import provider_settings
from tests.keys import FERNET_KEY_NEW, FERNET_KEY_OLD

REDIS_CACHES = {
    "default": {
        "BACKEND": "django_tokens.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
    }
}
GOOD_TOKENS = {
    "ISSUER": "https://auth.example.com",
    "ENCRYPTION_KEYS": [FERNET_KEY_NEW, FERNET_KEY_OLD],
    "SIGNING_ALGORITHM": "ES256",
    "CLAIMS_HOOK": "example_project.demo.claims.seed_claims",
    "CACHE_ALIAS": "default",
}


def production(tokens=GOOD_TOKENS, **other_settings):
    """A production-like configuration (DEBUG off, Redis cache, good DJANGO_TOKENS), with
    the given changes."""
    return override_settings(
        **{"DEBUG": False, "CACHES": REDIS_CACHES, "DJANGO_TOKENS": tokens, **other_settings}
    )


def ids(messages):
    return sorted(message.id for message in messages)


def test_good_configuration_raises_nothing():
    with production():
        assert check_settings() == []


@pytest.mark.django_db  # Django 6's own model checks read database features.
def test_checks_are_registered_with_django():
    with production({**GOOD_TOKENS, "SIGNING_ALGORITHM": "HS256"}):
        assert "django_tokens.E003" in ids(checks.run_checks())
    with production():
        assert not [m for m in checks.run_checks() if m.id.startswith("django_tokens.")]


@pytest.mark.parametrize("value", [["ISSUER"], "ISSUER=x", 42])
def test_e001_django_tokens_is_not_a_dict(value):
    with production(value):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.E001"]
    assert messages[0].level == checks.ERROR
    assert messages[0].hint


def test_e002_unknown_keys():
    with production({**GOOD_TOKENS, "ACCESS_TOKEN_LIFTIME": 60, "ISSUR": "x"}):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.E002"]
    assert "ACCESS_TOKEN_LIFTIME" in messages[0].msg
    assert "ISSUR" in messages[0].msg


@pytest.mark.parametrize("algorithm", ["HS256", "none", "RS384", "es256"])
def test_e003_unsupported_signing_algorithm(algorithm):
    with production({**GOOD_TOKENS, "SIGNING_ALGORITHM": algorithm}):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.E003"]
    assert "RS256" in messages[0].hint


@pytest.mark.parametrize("algorithm", ["RS256", "RS512", "ES256", "EdDSA"])
def test_e003_accepts_each_supported_algorithm(algorithm):
    with production({**GOOD_TOKENS, "SIGNING_ALGORITHM": algorithm}):
        assert check_settings() == []


@pytest.mark.parametrize(
    "hook", ["example_project.demo.claims.no_such_hook", "no_such_module.hook", "nodots"]
)
def test_e004_claims_hook_cannot_be_imported(hook):
    with production({**GOOD_TOKENS, "CLAIMS_HOOK": hook}):
        assert ids(check_settings()) == ["django_tokens.E004"]


@pytest.mark.parametrize(
    "keys",
    [
        "a-single-string-instead-of-a-list-of-keys",
        ["too-short"],
        [FERNET_KEY_NEW, "too-short"],
        [FERNET_KEY_NEW, b"bytes-are-not-accepted-here-0123456789"],
        [None],
    ],
)
def test_e005_encryption_keys_malformed(keys):
    with production({**GOOD_TOKENS, "ENCRYPTION_KEYS": keys}):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.E005"]
    assert "Fernet.generate_key" in messages[0].hint


def test_w001_no_encryption_keys_in_production():
    with production({**GOOD_TOKENS, "ENCRYPTION_KEYS": []}):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.W001"]
    assert messages[0].level == checks.WARNING
    with production({**GOOD_TOKENS, "ENCRYPTION_KEYS": []}, DEBUG=True):
        assert check_settings() == []


def test_e006_cache_alias_missing():
    with production({**GOOD_TOKENS, "CACHE_ALIAS": "tokens"}):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.E006"]
    assert "'tokens'" in messages[0].msg


def test_e006_accepts_a_named_cache_alias():
    caches = {**REDIS_CACHES, "tokens": REDIS_CACHES["default"]}
    with production({**GOOD_TOKENS, "CACHE_ALIAS": "tokens"}, CACHES=caches):
        assert check_settings() == []


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    ],
)
def test_w002_process_local_cache_in_production(backend):
    caches = {"default": {"BACKEND": backend}}
    with production(CACHES=caches):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.W002"]
    with production(CACHES=caches, DEBUG=True):
        assert check_settings() == []


def test_w002_looks_at_the_configured_alias_only():
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "tokens": REDIS_CACHES["default"],
    }
    with production({**GOOD_TOKENS, "CACHE_ALIAS": "tokens"}, CACHES=caches):
        assert check_settings() == []


@pytest.mark.parametrize("issuer", [None, ""])
def test_w003_issuer_unset_in_production(issuer):
    with production({**GOOD_TOKENS, "ISSUER": issuer}):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.W003"]
    with production({**GOOD_TOKENS, "ISSUER": issuer}, DEBUG=True):
        assert check_settings() == []


def test_e007_rest_framework_not_installed():
    installed = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    with production(INSTALLED_APPS=installed):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.E007"]


def test_several_problems_are_reported_together():
    bad = {"SIGNING_ALGORITHM": "HS256", "ENCRYPTION_KEYS": ["short"], "CACHE_ALIAS": "gone"}
    with production(bad):
        assert ids(check_settings()) == [
            "django_tokens.E003",
            "django_tokens.E005",
            "django_tokens.E006",
            "django_tokens.W003",
        ]


@pytest.mark.parametrize("prefix", ["x" * 17, 42])
def test_e008_api_key_id_prefix_too_long_or_not_a_string(prefix):
    with production({**GOOD_TOKENS, "API_KEY_ID_PREFIX": prefix}):
        assert ids(check_settings()) == ["django_tokens.E008"]


def test_e008_accepts_a_short_prefix():
    with production({**GOOD_TOKENS, "API_KEY_ID_PREFIX": "acme_live_"}):
        assert ids(check_settings()) == []


FAST = "django_tokens.hashers.HighEntropySecretHasher"
SLOW = "django.contrib.auth.hashers.PBKDF2PasswordHasher"


@pytest.mark.parametrize(
    ("hashers", "expected"),
    [
        ([SLOW], ["django_tokens.E009"]),
        ([FAST, SLOW], ["django_tokens.E010"]),
        ([SLOW, FAST], []),
    ],
    ids=["fast-hasher-missing", "fast-hasher-first", "fast-hasher-after-the-slow-one"],
)
def test_e009_e010_client_secret_hasher_placement(hashers, expected):
    with production(OAUTH2_PROVIDER=provider_settings(), PASSWORD_HASHERS=hashers):
        assert ids(check_settings()) == expected


def test_w004_provider_without_the_keystore_hooks():
    with production(OAUTH2_PROVIDER={"CLIENT_SECRET_HASHER": "django_tokens_sha256"}):
        (message,) = check_settings()
    assert message.id == "django_tokens.W004"
    assert "ACCESS_TOKEN_GENERATOR, OAUTH2_VALIDATOR_CLASS" in message.msg
    with production(OAUTH2_PROVIDER=provider_settings(ACCESS_TOKEN_EXPIRE_SECONDS=600)):
        assert check_settings() == []


def test_w004_is_silent_without_django_oauth_toolkit():
    apps = [app for app in settings.INSTALLED_APPS if app != "oauth2_provider"]
    with production(INSTALLED_APPS=apps, OAUTH2_PROVIDER={}):
        assert "django_tokens.W004" not in ids(check_settings())


def test_w005_oidc_rsa_private_key_is_a_second_key():
    provider = provider_settings(OIDC_RSA_PRIVATE_KEY="-----BEGIN PRIVATE KEY-----...")
    with production(OAUTH2_PROVIDER=provider):
        assert ids(check_settings()) == ["django_tokens.W005"]


@pytest.mark.parametrize(
    "changes",
    [
        {"AUDIT_RETENTION": -1},
        {"ACCESS_TOKEN_LIFETIME": "3600"},
        {"REFRESH_REUSE_GRACE": timedelta(seconds=-5)},
        {"LEEWAY": True},
    ],
)
def test_e011_durations_must_be_zero_or_more(changes):
    with production({**GOOD_TOKENS, **changes}):
        messages = check_settings()
    assert ids(messages) == ["django_tokens.E011"]
    assert next(iter(changes)) in messages[0].msg


@pytest.mark.parametrize(
    "changes", [{"AUDIT_RETENTION": 0}, {"ACCESS_TOKEN_LIFETIME": timedelta(minutes=5)}]
)
def test_zero_and_timedelta_durations_are_fine(changes):
    with production({**GOOD_TOKENS, **changes}):
        assert check_settings() == []


@pytest.mark.parametrize(
    "backend", ["django_tokens.cache.RedisCache", "django.core.cache.backends.redis.RedisCache"]
)
def test_either_redis_backend_is_shared_by_every_process(backend):
    caches = {"default": {**REDIS_CACHES["default"], "BACKEND": backend}}
    with production(CACHES=caches):
        assert check_settings() == []
