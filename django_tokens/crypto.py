"""Random secrets, digests and the secret box that encrypts what must be recovered at rest.

The box is ``cryptography``'s MultiFernet (AES-128-CBC + HMAC-SHA256, authenticated): it
encrypts with the first key of ``ENCRYPTION_KEYS`` and decrypts with any of them, so the
encryption key itself rotates by prepending a new key and running ``reencrypt_secrets``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from django_tokens.conf import token_settings

#: Bytes of randomness in an opaque token or secret: 256 bits.
TOKEN_BYTES = 32


def random_token(nbytes: int = TOKEN_BYTES) -> str:
    """A URL-safe string of ``nbytes`` from the operating system's CSPRNG."""
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    """SHA-256 hex digest: enough for high-entropy secrets, which need no slow hash."""
    return hashlib.sha256(value.encode()).hexdigest()


class DecryptionError(Exception):
    """A stored ciphertext could not be decrypted with any configured key."""


def _fernet_key(material: str) -> bytes:
    """Use ``material`` as a Fernet key when it is one, else derive one from it with HKDF."""
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except ValueError:
        pass
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"django-tokens secret box"
    ).derive(material.encode())
    return base64.urlsafe_b64encode(derived)


def encryption_keys_from_secret_key() -> bool:
    """True when no ENCRYPTION_KEYS are configured and the box falls back to SECRET_KEY."""
    return not token_settings.ENCRYPTION_KEYS


def _key_material() -> list[str]:
    if token_settings.ENCRYPTION_KEYS:
        return [str(key) for key in token_settings.ENCRYPTION_KEYS]
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


class SecretBox:
    """Encrypts with the newest key, decrypts with any configured key."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key.")
        self._primary = Fernet(_fernet_key(keys[0]))
        self._fernet = MultiFernet([self._primary, *(Fernet(_fernet_key(k)) for k in keys[1:])])

    def encrypt(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode()

    def decrypt(self, ciphertext: str) -> bytes:
        try:
            return self._fernet.decrypt(ciphertext.encode())
        except InvalidToken as exc:
            raise DecryptionError(
                "Stored secret cannot be decrypted with any key in ENCRYPTION_KEYS."
            ) from exc

    def is_current(self, ciphertext: str) -> bool:
        """True when ``ciphertext`` is already encrypted under the newest key."""
        try:
            self._primary.decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True

    def reencrypt(self, ciphertext: str) -> str:
        """The same plaintext encrypted under the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionError(
                "Stored secret cannot be decrypted with any key in ENCRYPTION_KEYS."
            ) from exc


@cache
def secret_box() -> SecretBox:
    return SecretBox(_key_material())
