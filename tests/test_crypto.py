import base64
import re

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.test import override_settings

from django_tokens.crypto import (
    TOKEN_BYTES,
    DecryptionError,
    SecretBox,
    digest,
    encryption_keys_from_secret_key,
    random_token,
    secret_box,
)
from tests.keys import FERNET_KEY_FOREIGN, FERNET_KEY_NEW, FERNET_KEY_OLD, PASSPHRASE_KEY

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def tokens_settings(**overrides):
    return override_settings(DJANGO_TOKENS={**settings.DJANGO_TOKENS, **overrides})


def hkdf_fernet(material: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"django-tokens secret box"
    ).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


# -- random tokens and digests -------------------------------------------------------------


def test_random_token_carries_256_bits_url_safe():
    token = random_token()
    assert TOKEN_BYTES * 8 >= 256
    assert URL_SAFE.match(token)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == TOKEN_BYTES
    assert len(token) == 43


def test_random_token_length_follows_nbytes():
    token = random_token(64)
    assert URL_SAFE.match(token)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == 64


def test_random_tokens_do_not_repeat_and_use_the_whole_alphabet():
    tokens = {random_token() for _ in range(2000)}
    assert len(tokens) == 2000
    alphabet = set("".join(tokens))
    assert len(alphabet) == 64


def test_digest_is_sha256_hex():
    assert digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(digest(random_token())) == 64
    assert digest("a") != digest("b")


def test_secret_box_round_trip_with_a_fernet_key():
    box = SecretBox([FERNET_KEY_NEW])
    ciphertext = box.encrypt(b"private key material")
    assert b"private key material" not in ciphertext.encode()
    assert box.decrypt(ciphertext) == b"private key material"
    assert Fernet(FERNET_KEY_NEW.encode()).decrypt(ciphertext.encode()) == b"private key material"


def test_encryption_is_randomised():
    box = SecretBox([FERNET_KEY_NEW])
    assert box.encrypt(b"same") != box.encrypt(b"same")


def test_non_fernet_string_key_is_derived_with_hkdf():
    box = SecretBox([PASSPHRASE_KEY])
    ciphertext = box.encrypt(b"payload")
    assert box.decrypt(ciphertext) == b"payload"
    assert hkdf_fernet(PASSPHRASE_KEY).decrypt(ciphertext.encode()) == b"payload"


def test_rotation_decrypts_with_an_older_key_of_the_list():
    old_ciphertext = SecretBox([FERNET_KEY_OLD]).encrypt(b"payload")
    rotated = SecretBox([FERNET_KEY_NEW, FERNET_KEY_OLD])
    assert rotated.decrypt(old_ciphertext) == b"payload"
    new_ciphertext = rotated.encrypt(b"payload")
    with pytest.raises(DecryptionError):
        SecretBox([FERNET_KEY_OLD]).decrypt(new_ciphertext)
    assert SecretBox([FERNET_KEY_NEW]).decrypt(new_ciphertext) == b"payload"


def test_is_current_tells_whether_the_newest_key_encrypted_it():
    rotated = SecretBox([FERNET_KEY_NEW, FERNET_KEY_OLD])
    assert rotated.is_current(rotated.encrypt(b"x"))
    assert not rotated.is_current(SecretBox([FERNET_KEY_OLD]).encrypt(b"x"))
    assert not rotated.is_current("not a ciphertext")


def test_reencrypt_moves_a_ciphertext_under_the_newest_key():
    old_ciphertext = SecretBox([FERNET_KEY_OLD]).encrypt(b"payload")
    rotated = SecretBox([FERNET_KEY_NEW, FERNET_KEY_OLD])
    fresh = rotated.reencrypt(old_ciphertext)
    assert rotated.is_current(fresh)
    assert SecretBox([FERNET_KEY_NEW]).decrypt(fresh) == b"payload"


@pytest.mark.parametrize("operation", ["decrypt", "reencrypt"])
def test_decryption_error_when_no_key_matches(operation):
    foreign = SecretBox([FERNET_KEY_FOREIGN]).encrypt(b"payload")
    box = SecretBox([FERNET_KEY_NEW, FERNET_KEY_OLD])
    with pytest.raises(DecryptionError):
        getattr(box, operation)(foreign)
    with pytest.raises(DecryptionError):
        getattr(box, operation)("garbage")


def test_tampered_ciphertext_is_refused():
    box = SecretBox([FERNET_KEY_NEW])
    raw = bytearray(base64.urlsafe_b64decode(box.encrypt(b"payload")))
    raw[-40] ^= 1
    with pytest.raises(DecryptionError):
        box.decrypt(base64.urlsafe_b64encode(bytes(raw)).decode())


def test_secret_box_needs_a_key():
    with pytest.raises(ValueError, match="at least one key"):
        SecretBox([])


# -- the configured box --------------------------------------------------------------------


def test_configured_box_encrypts_with_the_first_encryption_key():
    with tokens_settings(ENCRYPTION_KEYS=[FERNET_KEY_NEW, FERNET_KEY_OLD]):
        assert not encryption_keys_from_secret_key()
        ciphertext = secret_box().encrypt(b"payload")
    assert SecretBox([FERNET_KEY_NEW]).decrypt(ciphertext) == b"payload"


def test_configured_box_follows_a_settings_change():
    with tokens_settings(ENCRYPTION_KEYS=[FERNET_KEY_OLD]):
        ciphertext = secret_box().encrypt(b"payload")
    with tokens_settings(ENCRYPTION_KEYS=[FERNET_KEY_NEW]), pytest.raises(DecryptionError):
        secret_box().decrypt(ciphertext)
    with tokens_settings(ENCRYPTION_KEYS=[FERNET_KEY_NEW, FERNET_KEY_OLD]):
        assert secret_box().decrypt(ciphertext) == b"payload"


def test_box_falls_back_to_secret_key_without_encryption_keys():
    with (
        tokens_settings(ENCRYPTION_KEYS=[]),
        override_settings(SECRET_KEY="a-secret-key-for-this-test-only-0123456789"),
    ):
        assert encryption_keys_from_secret_key()
        ciphertext = secret_box().encrypt(b"payload")
    assert hkdf_fernet("a-secret-key-for-this-test-only-0123456789").decrypt(
        ciphertext.encode()
    ) == (b"payload")


def test_box_decrypts_with_secret_key_fallbacks():
    with (
        tokens_settings(ENCRYPTION_KEYS=[]),
        override_settings(SECRET_KEY="old-secret-key-for-this-test-only-0123456789"),
    ):
        ciphertext = secret_box().encrypt(b"payload")
    with (
        tokens_settings(ENCRYPTION_KEYS=[]),
        override_settings(
            SECRET_KEY="new-secret-key-for-this-test-only-0123456789",
            SECRET_KEY_FALLBACKS=["old-secret-key-for-this-test-only-0123456789"],
        ),
    ):
        box = secret_box()
        assert box.decrypt(ciphertext) == b"payload"
        assert not box.is_current(ciphertext)
        assert box.is_current(box.reencrypt(ciphertext))
    with (
        tokens_settings(ENCRYPTION_KEYS=[]),
        override_settings(
            SECRET_KEY="new-secret-key-for-this-test-only-0123456789", SECRET_KEY_FALLBACKS=[]
        ),
        pytest.raises(DecryptionError),
    ):
        secret_box().decrypt(ciphertext)
