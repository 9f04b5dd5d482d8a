"""The keystore: which key signs, which keys verify, rotation, and the published JWKS.

Loading a private key from PEM costs tens of milliseconds against a fraction of one for a
signature, so each process keeps the loaded keys in memory. A version stamp in the shared
cache tells every process that another one rotated the keys; it is checked at most once per
``KEYSTORE_CHECK_INTERVAL`` seconds, and at once when a token names an unknown ``kid``.
Because the next key is published before it signs anything, a process that has not yet
noticed a rotation still signs with a key that every verifier knows.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.apps import apps
from django.core.cache import caches
from django.db import IntegrityError, router, transaction
from django.utils import timezone

from django_tokens import audit, jws
from django_tokens.conf import SIGNING_ALGORITHMS, max_token_lifetime, token_settings
from django_tokens.crypto import secret_box
from django_tokens.models import RefreshToken, SigningKey

logger = logging.getLogger(__name__)

VERSION_CACHE_KEY = "django_tokens:keystore:version"
#: How often, at most, an unknown ``kid`` may send a process to the database.
UNKNOWN_KID_RELOAD_INTERVAL = 1.0
#: A snapshot is reloaded after this many seconds even if the version stamp did not change,
#: so a lost stamp (a flushed or process-local cache) cannot keep a process on stale keys.
SNAPSHOT_MAX_AGE = 300.0
MAX_KID_LENGTH = 128
#: How many verified tokens a process remembers (per loaded snapshot) before starting over.
VERIFIED_TOKENS_REMEMBERED = 2048
PUBLISHED_STATES = (SigningKey.State.NEXT, SigningKey.State.ACTIVE, SigningKey.State.RETIRING)


class KeystoreError(Exception):
    """The keystore cannot serve the request (for example: an unsupported algorithm)."""


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    algorithm: str
    public_key: Any
    private_key: Any = None


@dataclass
class _Snapshot:
    version: str | None
    signing: LoadedKey | None
    verifying: dict[str, LoadedKey]
    jwks: dict[str, Any]
    #: The earliest ``retire_after`` among the loaded keys: from then on the snapshot
    #: publishes a key it must drop, though no process changed anything.
    stale_after: datetime | None = None
    checked_at: float = field(default_factory=time.monotonic)
    loaded_at: float = field(default_factory=time.monotonic)
    #: Tokens these keys verified, by the exact token and what it was checked against: a
    #: client sends one access token many times, and its signature need not be checked
    #: again. Dropped with the snapshot, so a rotation or retirement starts afresh.
    verified: dict[tuple[Any, ...], _Verified] = field(default_factory=dict)


@dataclass(frozen=True)
class _Verified:
    header: dict[str, Any]
    claims: dict[str, Any]

    def current(self, now: float, leeway: float) -> bool:
        """Whether the time claims still hold, as PyJWT checks them."""
        claims = self.claims
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        return (
            (exp is None or exp > now - leeway)
            and (nbf is None or nbf <= now + leeway)
            and (iat is None or iat <= now + leeway)
        )


_snapshot: _Snapshot | None = None
_last_unknown_kid_reload = 0.0
_lock = threading.Lock()


def reset() -> None:
    """Forget the loaded keys (tests, settings changes); the next use reloads them."""
    global _snapshot, _last_unknown_kid_reload
    _snapshot = None
    _last_unknown_kid_reload = 0.0


# -- key material --------------------------------------------------------------------------


def generate_private_key(algorithm: str) -> Any:
    if algorithm in ("RS256", "RS512"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise _unsupported(algorithm)


def _unsupported(algorithm: str) -> KeystoreError:
    choices = ", ".join(SIGNING_ALGORITHMS)
    return KeystoreError(f"Unsupported signing algorithm {algorithm!r}; choose one of {choices}.")


def _load_private_key(key: SigningKey) -> Any:
    pem = secret_box().decrypt(key.encrypted_private_key)
    return serialization.load_pem_private_key(pem, password=None)


def _load_public_key(key: SigningKey) -> Any:
    return jws.public_key_from_jwk(key.public_jwk)


def create_key(algorithm: str, state: str, *, now: datetime | None = None) -> SigningKey:
    """Generate a key pair and store it (private half encrypted) in ``state``."""
    private_key = generate_private_key(algorithm)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_jwk = jws.public_jwk(private_key.public_key(), algorithm)
    now = now or timezone.now()
    return SigningKey.objects.create(
        kid=jws.jwk_thumbprint(public_jwk),
        algorithm=algorithm,
        state=state,
        encrypted_private_key=secret_box().encrypt(pem),
        public_jwk=public_jwk,
        created_at=now,
        activated_at=now if state == SigningKey.State.ACTIVE else None,
    )


def published_jwk(key: SigningKey) -> dict[str, Any]:
    return {**key.public_jwk, "kid": key.kid, "alg": key.algorithm, "use": "sig"}


# -- the in-process snapshot ---------------------------------------------------------------


def _cache() -> Any:
    return caches[token_settings.CACHE_ALIAS]


def _shared_version() -> str | None:
    try:
        return _cache().get(VERSION_CACHE_KEY)
    except Exception as exc:
        logger.warning("Keystore version stamp unreadable; keeping the loaded keys: %r", exc)
        return _snapshot.version if _snapshot else None


def _bump_version() -> None:
    try:
        _cache().set(VERSION_CACHE_KEY, uuid.uuid4().hex, timeout=None)
    except Exception as exc:
        logger.error(
            "Could not publish the keystore version stamp; other processes notice the "
            "rotation when they meet an unknown kid. %r",
            exc,
        )


def _load(version: str | None, *, now: datetime | None = None) -> _Snapshot:
    now = now or timezone.now()
    signing: LoadedKey | None = None
    verifying: dict[str, LoadedKey] = {}
    jwks: list[dict[str, Any]] = []
    retire_afters: list[datetime] = []
    for key in SigningKey.objects.filter(state__in=PUBLISHED_STATES).order_by("-created_at"):
        if key.state == SigningKey.State.RETIRING and key.retire_after:
            if key.retire_after <= now:
                continue
            retire_afters.append(key.retire_after)
        loaded = LoadedKey(key.kid, key.algorithm, _load_public_key(key))
        if key.state == SigningKey.State.ACTIVE:
            loaded = LoadedKey(key.kid, key.algorithm, loaded.public_key, _load_private_key(key))
            signing = loaded
        verifying[key.kid] = loaded
        jwks.append(published_jwk(key))
    return _Snapshot(version, signing, verifying, {"keys": jwks}, min(retire_afters, default=None))


def _current(*, force: bool = False) -> _Snapshot:
    global _snapshot
    snapshot = _snapshot
    interval = token_settings.KEYSTORE_CHECK_INTERVAL
    if not force and snapshot is not None and time.monotonic() - snapshot.checked_at < interval:
        return snapshot
    version = _shared_version()
    fresh_enough = (
        snapshot is not None
        and time.monotonic() - snapshot.loaded_at < SNAPSHOT_MAX_AGE
        and (snapshot.stale_after is None or timezone.now() < snapshot.stale_after)
    )
    if not force and snapshot is not None and fresh_enough and version == snapshot.version:
        snapshot.checked_at = time.monotonic()
        return snapshot
    with _lock:
        _snapshot = _load(version)
        return _snapshot


def signing_key() -> LoadedKey:
    """The active key, loaded; the first call on an empty keystore creates the first keys."""
    snapshot = _current()
    if snapshot.signing is None:
        ensure_keys()
        snapshot = _current(force=True)
    if snapshot.signing is None:  # pragma: no cover - ensure_keys guarantees an active key
        raise KeystoreError("The keystore has no active signing key.")
    return snapshot.signing


def verification_key(kid: str) -> LoadedKey | None:
    """The published key named ``kid``, from memory.

    An unknown ``kid`` sends this process to the database at most once a second, so a flood
    of made-up kids cannot turn into a flood of queries.
    """
    global _last_unknown_kid_reload
    snapshot = _current()
    key = snapshot.verifying.get(kid)
    if key is not None:
        return key
    if time.monotonic() - _last_unknown_kid_reload < UNKNOWN_KID_RELOAD_INTERVAL:
        return None
    _last_unknown_kid_reload = time.monotonic()
    return _current(force=True).verifying.get(kid)


def verify(
    token: str | bytes,
    *,
    types: Collection[str],
    audience: str | None,
    issuer: str | None,
    require: Iterable[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a token this keystore signed; return its header and claims.

    The key is the published one its ``kid`` names, with that key's algorithm pinned; the
    header's ``typ`` must be one of ``types`` (compared case-insensitively), so one kind of
    token cannot pass for another. Raises :class:`jws.InvalidSignedToken`.

    A token this process verified before against the same expectations, with the keys it
    has loaded now, is not verified again: only its time claims are checked anew.
    """
    snapshot = _current()
    remembered_as = (token, frozenset(types), audience, issuer, tuple(require))
    remembered = snapshot.verified.get(remembered_as)
    if remembered is not None and remembered.current(time.time(), token_settings.LEEWAY):
        return dict(remembered.header), dict(remembered.claims)
    header, claims = _verify(
        token, types=types, audience=audience, issuer=issuer, require=remembered_as[4]
    )
    if len(snapshot.verified) >= VERIFIED_TOKENS_REMEMBERED:
        snapshot.verified.clear()
    snapshot.verified[remembered_as] = _Verified(dict(header), dict(claims))
    return header, claims


def _verify(
    token: str | bytes,
    *,
    types: Collection[str],
    audience: str | None,
    issuer: str | None,
    require: Iterable[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    header = jws.unverified_header(token)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise jws.InvalidSignedToken("Token has no usable kid.")
    if str(header.get("typ", "")).lower() not in {kind.lower() for kind in types}:
        raise jws.InvalidSignedToken("Token is of another type.")
    key = verification_key(kid)
    if key is None:
        raise jws.InvalidSignedToken("Unknown signing key.")
    claims = jws.verify(
        token,
        key.public_key,
        key.algorithm,
        audience=audience,
        issuer=issuer,
        leeway=token_settings.LEEWAY,
        require=require,
    )
    return header, claims


def jwks() -> dict[str, Any]:
    """The RFC 7517 JWK Set: the next, active and still-needed retiring keys."""
    snapshot = _current()
    if snapshot.signing is None:
        ensure_keys()
        snapshot = _current(force=True)
    return snapshot.jwks


# -- changes -------------------------------------------------------------------------------


def ensure_keys(algorithm: str | None = None) -> None:
    """Create the active and the next key where they are missing (safe across processes)."""
    algorithm = algorithm or token_settings.SIGNING_ALGORITHM
    created = False
    for state in (SigningKey.State.ACTIVE, SigningKey.State.NEXT):
        if SigningKey.objects.filter(state=state).exists():
            continue
        try:
            with transaction.atomic(using=router.db_for_write(SigningKey)):
                create_key(algorithm, state)
        except IntegrityError:
            continue  # another process created it first
        created = True
        logger.info("Created the %s signing key (%s).", state, algorithm)
    if created:
        transaction.on_commit(_bump_version, using=router.db_for_write(SigningKey))


@dataclass(frozen=True)
class Rotation:
    active: SigningKey
    next: SigningKey
    retiring: SigningKey | None
    retired: int


def rotate(algorithm: str | None = None, *, now: datetime | None = None) -> Rotation:
    """Promote the next key to active; the old active key retires once its tokens expire.

    With an ``algorithm`` that differs from the next key's, a new key of that algorithm is
    activated at once; it was not pre-published, so verifiers holding a cached JWKS refetch
    it when they meet its ``kid``.
    """
    algorithm = algorithm or token_settings.SIGNING_ALGORITHM
    if algorithm not in SIGNING_ALGORITHMS:
        raise _unsupported(algorithm)
    try:
        return _rotate(algorithm, now or timezone.now())
    except IntegrityError:
        # A rotation in another process committed first: its new next key was invisible
        # to this one's locked read. Rotate again on top of it.
        return _rotate(algorithm, now or timezone.now())


def _rotate(algorithm: str, now: datetime) -> Rotation:
    with transaction.atomic(using=router.db_for_write(SigningKey)):
        keys = {
            key.state: key
            for key in SigningKey.objects.select_for_update().filter(
                state__in=(SigningKey.State.ACTIVE, SigningKey.State.NEXT)
            )
        }
        old_active = keys.get(SigningKey.State.ACTIVE)
        next_key = keys.get(SigningKey.State.NEXT)
        if old_active is not None:
            old_active.state = SigningKey.State.RETIRING
            old_active.retiring_at = now
            old_active.retire_after = now + timedelta(seconds=max_token_lifetime())
            old_active.save(update_fields=["state", "retiring_at", "retire_after"])
        if next_key is not None and next_key.algorithm != algorithm:
            next_key.state = SigningKey.State.RETIRED
            next_key.retired_at = now
            next_key.save(update_fields=["state", "retired_at"])
            next_key = None
        if next_key is None:
            new_active = create_key(algorithm, SigningKey.State.ACTIVE, now=now)
        else:
            next_key.state = SigningKey.State.ACTIVE
            next_key.activated_at = now
            next_key.save(update_fields=["state", "activated_at"])
            new_active = next_key
        new_next = create_key(algorithm, SigningKey.State.NEXT, now=now)
        retired = retire_expired(now=now)
        audit.record(
            audit.Action.SIGNING_KEY_ROTATED,
            signing_kid=new_active.kid,
            actor="",
            detail={
                "algorithm": new_active.algorithm,
                "next": new_next.kid,
                "retiring": old_active.kid if old_active else None,
            },
            now=now,
        )
        transaction.on_commit(_bump_version, using=router.db_for_write(SigningKey))
    reset()
    return Rotation(new_active, new_next, old_active, retired)


def retire_expired(*, now: datetime) -> int:
    """Retire the retiring keys whose tokens have all expired. Returns how many."""
    due = list(
        SigningKey.objects.filter(
            state=SigningKey.State.RETIRING, retire_after__lte=now
        ).values_list("pk", "kid")
    )
    if not due:
        return 0
    retired = SigningKey.objects.filter(
        pk__in=[pk for pk, _kid in due], state=SigningKey.State.RETIRING
    ).update(state=SigningKey.State.RETIRED, retired_at=now)
    for _pk, kid in due:
        audit.record(
            audit.Action.SIGNING_KEY_RETIRED,
            signing_kid=kid,
            actor="",
            detail={"forced": False, "reason": "its tokens have expired"},
            now=now,
        )
    transaction.on_commit(_bump_version, using=router.db_for_write(SigningKey))
    return retired


# -- retiring a key early ------------------------------------------------------------------


class KeyStillNeeded(KeystoreError):
    """Retiring the key now would break tokens that are still valid."""

    def __init__(self, impact: RetirementImpact) -> None:
        super().__init__(f"Signing key {impact.key.kid} is still needed: {impact.describe()}")
        self.impact = impact


@dataclass(frozen=True)
class RetirementImpact:
    """What retiring a key now would break: tokens it signed that are still valid.

    A key signed from its activation until its rotation; a process that has not yet noticed
    a rotation may sign with the previous key for up to ``KEYSTORE_CHECK_INTERVAL``, so that
    much is added on either side. The sessions counted had
    tokens issued in that span that may still be valid: their access tokens are refused at
    once, and an API-key session's refresh token stops working. OAuth 2.0 access and ID
    tokens are counted from django-oauth-toolkit's rows.
    """

    key: SigningKey
    sessions: int
    oauth2_tokens: int
    needed_until: datetime | None

    @property
    def breaks_nothing(self) -> bool:
        return self.sessions == 0 and self.oauth2_tokens == 0

    def describe(self) -> str:
        if self.breaks_nothing:
            return "no valid token was signed by it."
        until = self.needed_until.isoformat() if self.needed_until else "they expire"
        return (
            f"{self.sessions} session(s) and {self.oauth2_tokens} OAuth 2.0 token(s) hold "
            f"tokens it signed, valid until {until}; their access tokens would be refused "
            "at once and API-key sessions would have to present a new assertion."
        )


def retirement_impact(key: SigningKey, *, now: datetime | None = None) -> RetirementImpact:
    now = now or timezone.now()
    # Either side of the key's active span, a process may not have noticed a rotation yet.
    slack = timedelta(seconds=token_settings.KEYSTORE_CHECK_INTERVAL)
    start = (key.activated_at or key.created_at) - slack
    end = (key.retiring_at or now) + slack
    oldest = now - timedelta(seconds=max_token_lifetime())
    session_count = (
        RefreshToken.objects.filter(
            created_at__gte=max(start, oldest),
            created_at__lt=end,
            session__revoked_at__isnull=True,
            session__expires_at__gt=now,
        )
        .values("session_id")
        .distinct()
        .count()
    )
    oauth2_count = 0
    if apps.is_installed("oauth2_provider"):
        from oauth2_provider.models import get_access_token_model, get_id_token_model

        for model in (get_access_token_model(), get_id_token_model()):
            oauth2_count += model._default_manager.filter(
                created__gte=start, created__lt=end, expires__gt=now
            ).count()
    return RetirementImpact(key, session_count, oauth2_count, key.retire_after)


def retire(kid: str, *, force: bool = False, now: datetime | None = None) -> RetirementImpact:
    """Retire a retiring key before ``retire_after``: it leaves the JWKS and verifies
    nothing more. Refused with :class:`KeyStillNeeded` while valid tokens need it, unless
    ``force``; the active key must be rotated first."""
    now = now or timezone.now()
    with transaction.atomic(using=router.db_for_write(SigningKey)):
        key = SigningKey.objects.select_for_update().filter(kid=kid).first()
        if key is None:
            raise KeystoreError(f"Unknown signing key: {kid!r}.")
        if key.state == SigningKey.State.RETIRED:
            raise KeystoreError(f"Signing key {kid} is retired already.")
        if key.state != SigningKey.State.RETIRING:
            raise KeystoreError(
                f"Signing key {kid} is the {key.state} key: rotate the keys first, then retire it."
            )
        impact = retirement_impact(key, now=now)
        if not impact.breaks_nothing and not force:
            raise KeyStillNeeded(impact)
        key.state = SigningKey.State.RETIRED
        key.retired_at = now
        key.save(update_fields=["state", "retired_at"])
        audit.record(
            audit.Action.SIGNING_KEY_RETIRED,
            signing_kid=key.kid,
            actor="",
            detail={
                "forced": not impact.breaks_nothing,
                "sessions": impact.sessions,
                "oauth2_tokens": impact.oauth2_tokens,
            },
            now=now,
        )
        transaction.on_commit(_bump_version, using=router.db_for_write(SigningKey))
    reset()
    return impact
