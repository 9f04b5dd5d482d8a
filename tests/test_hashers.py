"""``HighEntropySecretHasher``: one salted SHA-256 for generated client secrets, the project's
slow default hasher for short ones (SPEC section 4)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.hashers import (
    PBKDF2PasswordHasher,
    check_password,
    identify_hasher,
    make_password,
)
from django.test import override_settings
from oauth2_provider.generators import generate_client_secret

from django_tokens.hashers import HIGH_ENTROPY_MIN_LENGTH, HighEntropySecretHasher
from example_project import settings as example_settings

HASHER_PATH = "django_tokens.hashers.HighEntropySecretHasher"
PREFIX = "django_tokens_sha256$"
SALT = "fixedsalt0123456789abc"
SHORT_SECRET = "hand-set-123"  # 12 characters, as a person would type


@pytest.fixture
def hasher() -> HighEntropySecretHasher:
    return HighEntropySecretHasher()


@pytest.fixture
def secret() -> str:
    """A client secret as django-oauth-toolkit generates it."""
    return generate_client_secret()


@pytest.fixture
def example_hashers() -> Iterator[None]:
    """The example project's hashers (PBKDF2 first) instead of the suite's fast MD5."""
    with override_settings(PASSWORD_HASHERS=example_settings.PASSWORD_HASHERS):
        yield


def test_generated_secrets_are_long_enough_for_the_fast_path(secret: str) -> None:
    assert len(secret) >= HIGH_ENTROPY_MIN_LENGTH


def test_encode_then_verify_round_trips(hasher: HighEntropySecretHasher, secret: str) -> None:
    encoded = hasher.encode(secret, SALT)

    assert encoded.startswith(PREFIX)
    assert hasher.verify(secret, encoded)


def test_make_password_and_check_password_round_trip_through_the_registry(secret: str) -> None:
    encoded = make_password(secret, hasher="django_tokens_sha256")

    assert isinstance(identify_hasher(encoded), HighEntropySecretHasher)
    assert check_password(secret, encoded)
    assert not check_password(secret[:-1] + ("a" if secret[-1] != "a" else "b"), encoded)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda s: s[:-1] + ("a" if s[-1] != "a" else "b"),
        lambda s: s + "x",
        lambda s: s[1:],
        lambda s: s.upper() if s.upper() != s else s.lower(),
        lambda s: "",
    ],
    ids=["last-char", "extra-char", "missing-char", "case", "empty"],
)
def test_verify_is_false_for_a_wrong_secret(
    hasher: HighEntropySecretHasher, secret: str, wrong: Callable[[str], str]
) -> None:
    encoded = hasher.encode(secret, SALT)

    assert not hasher.verify(wrong(secret), encoded)


def test_encoding_carries_the_salt_and_never_the_secret(
    hasher: HighEntropySecretHasher, secret: str
) -> None:
    encoded = hasher.encode(secret, SALT)

    algorithm, salt, digest = encoded.split("$")
    assert (algorithm, salt) == ("django_tokens_sha256", SALT)
    assert len(digest) == 64
    assert secret not in encoded
    assert secret[:16] not in encoded
    assert hasher.decode(encoded) == {
        "algorithm": "django_tokens_sha256",
        "salt": SALT,
        "hash": digest,
    }


def test_a_different_salt_gives_a_different_encoding(
    hasher: HighEntropySecretHasher, secret: str
) -> None:
    first = hasher.encode(secret, SALT)
    second = hasher.encode(secret, "anothersalt9876543210")

    assert first != second
    assert first.split("$")[2] != second.split("$")[2]
    assert hasher.verify(secret, first)
    assert hasher.verify(secret, second)


def test_make_password_salts_each_encoding(secret: str) -> None:
    first = make_password(secret, hasher="django_tokens_sha256")
    second = make_password(secret, hasher="django_tokens_sha256")

    assert first != second


@pytest.mark.parametrize("salt", ["", "with$dollar"])
def test_a_salt_that_cannot_be_stored_is_refused(
    hasher: HighEntropySecretHasher, secret: str, salt: str
) -> None:
    with pytest.raises(ValueError, match="salt must be non-empty"):
        hasher.encode(secret, salt)


@pytest.mark.parametrize(
    "short",
    [SHORT_SECRET, "x" * (HIGH_ENTROPY_MIN_LENGTH - 1)],
    ids=["twelve-chars", "just-below-the-threshold"],
)
def test_short_secrets_get_the_slow_default_hasher(
    hasher: HighEntropySecretHasher, example_hashers: None, short: str
) -> None:
    encoded = hasher.encode(short, SALT)

    assert encoded.startswith("pbkdf2_sha256$")
    assert not encoded.startswith(PREFIX)
    assert short not in encoded
    assert check_password(short, encoded)
    assert not check_password(short + "!", encoded)


def test_a_secret_at_the_threshold_gets_the_fast_hasher(
    hasher: HighEntropySecretHasher, example_hashers: None
) -> None:
    at_threshold = "y" * HIGH_ENTROPY_MIN_LENGTH

    assert hasher.encode(at_threshold, SALT).startswith(PREFIX)


def test_short_secrets_follow_whatever_the_default_hasher_is(
    hasher: HighEntropySecretHasher,
) -> None:
    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher", HASHER_PATH]
    with override_settings(PASSWORD_HASHERS=hashers):
        encoded = hasher.encode(SHORT_SECRET, SALT)

        assert encoded.startswith("md5$")
        assert check_password(SHORT_SECRET, encoded)


def test_short_secrets_fall_back_to_pbkdf2_when_this_hasher_is_the_default(
    hasher: HighEntropySecretHasher,
) -> None:
    hashers = [HASHER_PATH, "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    with override_settings(PASSWORD_HASHERS=hashers):
        encoded = make_password(SHORT_SECRET)

        assert encoded.startswith("pbkdf2_sha256$")
        assert check_password(SHORT_SECRET, encoded)


def test_safe_summary_masks_salt_and_hash(hasher: HighEntropySecretHasher, secret: str) -> None:
    encoded = hasher.encode(secret, SALT)
    digest = encoded.split("$")[2]

    summary = hasher.safe_summary(encoded)

    assert summary["algorithm"] == "django_tokens_sha256"
    assert summary["salt"] != SALT
    assert summary["salt"].startswith(SALT[:2])
    assert set(summary["salt"][2:]) == {"*"}
    assert summary["hash"] != digest
    assert "*" in summary["hash"]
    assert digest not in summary["hash"]
    assert all(secret not in str(value) for value in summary.values())


@pytest.mark.parametrize(
    ("foreign", "message"),
    [
        ("pbkdf2_sha256$1000000$salt$aGFzaA==", "Not a django_tokens_sha256 hash"),
        ("md5$salt$0123456789abcdef0123456789abcdef", "Not a django_tokens_sha256 hash"),
        ("not-an-encoding-at-all", "not enough values"),
    ],
    ids=["pbkdf2", "md5", "no-separators"],
)
def test_decoding_a_foreign_encoding_raises_value_error(
    hasher: HighEntropySecretHasher, foreign: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        hasher.decode(foreign)


def test_encodings_never_need_an_update(hasher: HighEntropySecretHasher, secret: str) -> None:
    assert hasher.must_update(hasher.encode(secret, SALT)) is False


def test_example_project_keeps_user_passwords_on_a_slow_hasher(example_hashers: None) -> None:
    assert example_settings.PASSWORD_HASHERS[0] != HASHER_PATH
    assert HASHER_PATH in example_settings.PASSWORD_HASHERS
    assert example_settings.OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] == "django_tokens_sha256"
    assert make_password("a user's long passphrase, well over forty characters").startswith(
        "pbkdf2_sha256$"
    )


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def test_verifying_a_generated_secret_is_far_faster_than_pbkdf2(
    hasher: HighEntropySecretHasher, secret: str
) -> None:
    pbkdf2 = PBKDF2PasswordHasher()
    fast_encoded = hasher.encode(secret, hasher.salt())
    slow_encoded = pbkdf2.encode(secret, pbkdf2.salt())
    assert hasher.verify(secret, fast_encoded)
    assert pbkdf2.verify(secret, slow_encoded)

    fast = median_seconds(lambda: hasher.verify(secret, fast_encoded), repeat=9)
    slow = median_seconds(lambda: pbkdf2.verify(secret, slow_encoded), repeat=3)

    assert fast * 50 <= slow, f"fast {fast * 1e6:.1f} us, PBKDF2 {slow * 1e3:.1f} ms"
