from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings

from django_tokens import conf, keystore, sessions
from django_tokens.conf import DEFAULTS, max_token_lifetime, token_settings
from example_project.demo.claims import seed_claims


def tokens_settings(**overrides):
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


def test_unset_settings_fall_back_to_the_defaults():
    assert "ACCESS_TOKEN_LIFETIME" not in settings.DJANGO_TOKENS
    assert token_settings.ACCESS_TOKEN_LIFETIME == 3600 == DEFAULTS["ACCESS_TOKEN_LIFETIME"]
    assert token_settings.SIGNING_ALGORITHM == "RS256"


def test_override_settings_takes_effect_without_reload():
    assert token_settings.ACCESS_TOKEN_LIFETIME == 3600
    with tokens_settings(ACCESS_TOKEN_LIFETIME=60, AUDIENCE="other-audience"):
        assert token_settings.ACCESS_TOKEN_LIFETIME == 60
        assert token_settings.AUDIENCE == "other-audience"
    assert token_settings.ACCESS_TOKEN_LIFETIME == 3600
    assert token_settings.AUDIENCE == "django-tokens"


def test_modules_that_imported_token_settings_see_the_override():
    with tokens_settings(CACHE_ALIAS="elsewhere"):
        assert keystore.token_settings.CACHE_ALIAS == "elsewhere"
        assert sessions.token_settings.CACHE_ALIAS == "elsewhere"
        assert conf.token_settings is keystore.token_settings


def test_missing_or_empty_django_tokens_means_all_defaults():
    for empty in (None, {}):
        with override_settings(DJANGO_TOKENS=empty):
            assert token_settings.AUDIENCE == "django-tokens" == DEFAULTS["AUDIENCE"]
            assert token_settings.ENCRYPTION_KEYS == []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90),
        ("90", 90),
        (timedelta(minutes=15), 900),
        (timedelta(days=1, seconds=1), 86401),
    ],
)
def test_durations_are_whole_seconds_from_int_or_timedelta(value, seconds):
    with tokens_settings(ACCESS_TOKEN_LIFETIME=value, SESSION_LIFETIME=value):
        read = (token_settings.ACCESS_TOKEN_LIFETIME, token_settings.SESSION_LIFETIME)
        assert read == (seconds, seconds)
        assert isinstance(token_settings.ACCESS_TOKEN_LIFETIME, int)


def test_max_token_lifetime_is_the_longest_signed_token_lifetime_plus_leeway():
    # API-key access and refresh JWTs live a day by default: the longest signed tokens.
    assert max_token_lifetime() == 86400 + 30
    short_oauth = {
        **settings.OAUTH2_PROVIDER,
        "ACCESS_TOKEN_EXPIRE_SECONDS": 100,
        "ID_TOKEN_EXPIRE_SECONDS": 100,
    }
    with (
        override_settings(OAUTH2_PROVIDER=short_oauth),
        tokens_settings(
            ACCESS_TOKEN_LIFETIME=timedelta(minutes=5),
            API_KEY_ACCESS_TOKEN_LIFETIME=60,
            API_KEY_REFRESH_TOKEN_LIFETIME=120,
            LEEWAY=10,
        ),
    ):
        assert max_token_lifetime() == 300 + 10
    # OAuth tokens are signed by the same keys: DOT's lifetimes count too.
    with override_settings(OAUTH2_PROVIDER={**short_oauth, "ID_TOKEN_EXPIRE_SECONDS": 200000}):
        assert max_token_lifetime() == 200000 + 30
    with tokens_settings(API_KEY_REFRESH_TOKEN_LIFETIME=timedelta(days=2)):
        assert max_token_lifetime() == 2 * 86400 + 30
    assert max_token_lifetime() == 86400 + 30


def test_import_strings_are_resolved():
    with tokens_settings(CLAIMS_HOOK="example_project.demo.claims.seed_claims"):
        assert token_settings.CLAIMS_HOOK is seed_claims


def test_callables_are_taken_as_they_are():
    def hook(user, *, service, scopes):
        return {}

    with tokens_settings(CLAIMS_HOOK=hook):
        assert token_settings.CLAIMS_HOOK is hook
    with tokens_settings(CLAIMS_HOOK=None):
        assert token_settings.CLAIMS_HOOK is None


def test_unknown_setting_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="NOT_A_SETTING"):
        token_settings.NOT_A_SETTING  # noqa: B018
    assert getattr(token_settings, "NOT_A_SETTING", "fallback") == "fallback"
