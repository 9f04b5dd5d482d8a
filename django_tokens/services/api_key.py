"""API-key tokens (seed 000, "Authentication"), answered in Keycloak's response shape.

Three ways in, one result: an HS256 assertion signed with an API key's shared secret
(:func:`exchange_assertion`), an email and password (:func:`login`), or a refresh JWT
(:func:`refresh`). Each opens or continues a session and returns an access token, a refresh
JWT and an ID token, all signed by the keystore.

Every credential failure says the same thing (seed 000: "Missing or invalid credentials"),
whichever part failed; every refresh failure says the seed's refresh text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from django.contrib.auth import authenticate, get_user_model
from django.core.cache import caches
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from django_tokens import api_keys, jws, keystore, sessions, throttling
from django_tokens.cache import redis_client
from django_tokens.conf import token_settings
from django_tokens.crypto import DecryptionError, digest
from django_tokens.errors import (
    CREDENTIALS_MESSAGE,
    REFRESH_MESSAGE,
    InvalidCredentials,
    InvalidGrant,
    TemporarilyUnavailable,
)
from django_tokens.models import ApiKey, Session
from django_tokens.tokens import (
    REFRESH_TOKEN_CLAIM_TYPE,
    issue_access_token,
    issue_id_token,
    issue_refresh_jwt,
    metadata_for,
)

logger = logging.getLogger(__name__)

SERVICE = Session.Service.API_KEY
#: Assertions are HMACs with the key's shared secret; nothing else is accepted (RFC 8725 §3.1).
ASSERTION_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
#: An assertion's ``typ``, when it has one: a plain JWT (RFC 7519 §5.1), compared
#: case-insensitively as media types are.
ASSERTION_TYPES = frozenset({"jwt", "application/jwt"})
REPLAY_PREFIX = "django_tokens:assertion"
#: When the replay store began keeping records: see :func:`_records_since`.
RECORDS_SINCE_KEY = f"{REPLAY_PREFIX}:since"
MAX_KEY_ID_LENGTH = 64
MAX_JTI_LENGTH = 256


@dataclass(frozen=True)
class KeycloakResult:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(repr=False)
    refresh_expires_in: int
    id_token: str = field(repr=False)
    session_state: str
    scope: str


def _refused() -> InvalidCredentials:
    return InvalidCredentials(CREDENTIALS_MESSAGE)


def _mint(
    user: Any, refreshed: sessions.Refreshed, *, issuer: str, audience: str, now: datetime
) -> KeycloakResult:
    session = refreshed.session
    session_id = str(session.pk)
    extra = {"azp": audience}
    # No token outlives its session or its API key.
    ends = [session.expires_at]
    if session.api_key is not None and session.api_key.expires_at is not None:
        ends.append(session.api_key.expires_at)
    seconds_left = int((min(ends) - now).total_seconds())
    lifetime = max(1, min(token_settings.API_KEY_ACCESS_TOKEN_LIFETIME, seconds_left))
    access = issue_access_token(
        user,
        session_id=session_id,
        scopes=session.scopes,
        service=SERVICE,
        issuer=issuer,
        lifetime=lifetime,
        extra=extra,
        now=now,
    )
    refresh_jwt = issue_refresh_jwt(
        user,
        session_id=session_id,
        secret=refreshed.refresh_token,
        issuer=issuer,
        expires_at=refreshed.refresh_expires_at,
        now=now,
    )
    id_token = issue_id_token(
        user,
        session_id=session_id,
        scopes=session.scopes,
        issuer=issuer,
        audience=audience,
        auth_time=session.created_at,
        lifetime=lifetime,
        metadata=metadata_for(user, session.scopes),
        now=now,
    )
    return KeycloakResult(
        access_token=access.token,
        expires_in=access.expires_in,
        refresh_token=refresh_jwt,
        refresh_expires_in=max(0, int((refreshed.refresh_expires_at - now).total_seconds())),
        id_token=id_token,
        session_state=session_id,
        scope=session.scope,
    )


# -- assertions ----------------------------------------------------------------------------


def _assertion_key_id(assertion: str) -> tuple[str, str]:
    """The algorithm and key id of an assertion, refused before any key is looked up if the
    algorithm is not an HMAC or no key id can be read (``kid``, else ``iss``)."""
    try:
        header = jws.unverified_header(assertion)
        algorithm = header.get("alg")
        if algorithm not in ASSERTION_ALGORITHMS:
            raise _refused()
        # Explicit typing (RFC 8725 §3.11): a token that says it is of another kind is not
        # an assertion, whatever signs it.
        if "typ" in header and str(header["typ"]).lower() not in ASSERTION_TYPES:
            raise _refused()
        key_id = header.get("kid")
        if key_id is None:
            key_id = jws.unverified_claims(assertion).get("iss")
    except jws.InvalidSignedToken as exc:
        raise _refused() from exc
    if not _plain_text(key_id, MAX_KEY_ID_LENGTH):
        raise _refused()
    return str(algorithm), key_id


def _plain_text(value: Any, max_length: int) -> TypeGuard[str]:
    """A non-empty string of at most ``max_length`` characters that a database column and a
    cache key can hold: no NUL, no lone surrogate (JSON's ``\\ud800`` escapes make them)."""
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


@sensitive_variables()
def _verified_claims(assertion: str, api_key: ApiKey, algorithm: str, now: datetime) -> dict:
    """Check the HMAC with the current secret, then the previous one during its grace."""
    try:
        candidates = api_keys.secrets_for_verification(api_key, now)
    except DecryptionError:
        logger.error("API key %s: its secret cannot be decrypted.", api_key.key_id)
        raise _refused() from None
    for secret in candidates:
        try:
            return jws.verify(
                assertion,
                secret,
                algorithm,
                leeway=token_settings.LEEWAY,
                require=("exp", "iat"),
            )
        except jws.ExpiredSignedToken as exc:
            raise _refused() from exc
        except jws.InvalidSignedToken:
            continue
    raise _refused()


def _check_lifetime(claims: dict, now: datetime) -> int:
    """``exp - iat`` within the configured maximum, ``iat`` not in the future; returns ``exp``."""
    issued_at, expires_at = claims.get("iat"), claims.get("exp")
    if not isinstance(issued_at, int | float) or not isinstance(expires_at, int | float):
        raise _refused()
    if expires_at - issued_at > token_settings.API_KEY_ASSERTION_MAX_AGE:
        raise _refused()
    if issued_at > now.timestamp() + token_settings.LEEWAY:
        raise _refused()
    return int(expires_at)


def _accept_once(
    api_key: ApiKey, key_id: str, claims: dict, expires_at: int, now: datetime
) -> datetime:
    """Record the assertion's ``jti``; a second presentation within its lifetime is a replay.

    ``cache.add`` is atomic on a shared cache (Redis), so this holds across processes. If the
    cache cannot be reached the assertion is refused (503): never an accepted replay. If it
    lost its records meanwhile, an assertion signed before that is refused when its key
    opened a session since the assertion could first have been accepted: it may be a replay.

    Returns when the session of an accepted assertion opens: ``now``, or when the records
    began if that is later. A request that read the clock before a concurrent one wrote the
    stamp was still accepted under the records, so its session must not look older than them
    (it would make the key's next assertion of the same second look like a replay).
    """
    jti = claims.get("jti")
    if jti is None and not token_settings.API_KEY_REQUIRE_JTI:
        return now
    if not _plain_text(jti, MAX_JTI_LENGTH):
        raise _refused()
    timeout = max(1, int(expires_at - now.timestamp()) + token_settings.LEEWAY)
    record = f"{REPLAY_PREFIX}:{digest(key_id)[:32]}:{digest(jti)}"
    try:
        since, first_time = _record_once(caches[token_settings.CACHE_ALIAS], record, timeout, now)
    except Exception as exc:
        logger.error("Assertion replay store unreachable; refusing the assertion: %r", exc)
        raise TemporarilyUnavailable() from exc
    if not first_time:
        logger.warning("Replayed assertion refused for API key %r.", key_id)
        raise _refused()
    issued_at = claims["iat"]
    began = _from_milliseconds(since)
    if issued_at * 1000 < since and _opened_session_before(api_key, issued_at, began):
        logger.warning(
            "Assertion for API key %r signed before the replay store lost its records, "
            "while the key opened a session: refused as a possible replay.",
            key_id,
        )
        raise _refused()
    return max(now, began)


#: On Redis, the stamp of :func:`_records_since` and the record of the assertion in one round
#: trip. The values are stored as Django's Redis serializer stores integers (their digits),
#: so the cache API reads them back.
_RECORD_ONCE_SCRIPT = """
local since = redis.call('GET', KEYS[1])
if not since then
    redis.call('SET', KEYS[1], ARGV[1])
    since = ARGV[1]
end
local first = redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[2])
if first then return {since, 1} end
return {since, 0}
"""


def _record_once(cache: Any, record: str, timeout: int, now: datetime) -> tuple[int, bool]:
    """When the records began (:func:`_records_since`), and whether ``record`` was new."""
    redis = redis_client(cache)
    if redis is None:
        since = _records_since(cache, now)
        return since, bool(cache.add(record, 1, timeout=timeout))
    keys = [cache.make_and_validate_key(RECORDS_SINCE_KEY), cache.make_and_validate_key(record)]
    since, first_time = redis.eval(
        _RECORD_ONCE_SCRIPT, len(keys), *keys, int(now.timestamp() * 1000), timeout
    )
    return int(since), first_time == 1


def _records_since(cache: Any, now: datetime) -> int:
    """When the replay store began keeping records, in Unix milliseconds: written by the
    first assertion it sees, so it moves forward when the store loses its keys (a Redis
    restarted without persistence, a flush) and records of accepted assertions may be gone.
    Never after ``now``: the session this request opens is not before it."""
    since = cache.get(RECORDS_SINCE_KEY)
    if since is None:
        cache.add(RECORDS_SINCE_KEY, int(now.timestamp() * 1000), timeout=None)
        since = cache.get(RECORDS_SINCE_KEY)
    return int(since) if since is not None else int(now.timestamp() * 1000)


def _from_milliseconds(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds // 1000, UTC) + timedelta(
        milliseconds=milliseconds % 1000
    )


def _opened_session_before(api_key: ApiKey, issued_at: float, began: datetime) -> bool:
    """Whether an assertion issued at ``issued_at`` may have been accepted before the replay
    store's records began: the key opened a session in between (an assertion is accepted
    at the earliest ``LEEWAY`` seconds before its ``iat``)."""
    return Session.objects.filter(
        api_key=api_key,
        created_at__gte=datetime.fromtimestamp(issued_at - token_settings.LEEWAY, UTC),
        created_at__lt=began,
    ).exists()


def _open_session(api_key: ApiKey, *, issuer: str, now: datetime) -> KeycloakResult:
    def mint(refreshed: sessions.Refreshed) -> KeycloakResult:
        tokens = _mint(api_key.owner, refreshed, issuer=issuer, audience=api_key.key_id, now=now)
        # Last in the session's transaction, and only while the key is not revoked: the UPDATE
        # locks the key's row, so a concurrent revoke_api_key either happened before (and
        # this refuses) or waits for this session to exist (and revokes it too). Every
        # exchange of the key waits for that lock, so it is held for the commit alone, not
        # for the signatures.
        still_live = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            last_used_at=now
        )
        if not still_live:
            raise _refused()
        return tokens

    result: KeycloakResult = sessions.start(
        api_key.owner,
        service=SERVICE,
        scopes=api_key.scopes,
        api_key=api_key,
        now=now,
        then=mint,
    )
    return result


@sensitive_variables()
def exchange_assertion(
    assertion: str, *, issuer: str, client_ip: str | None, now: datetime | None = None
) -> KeycloakResult:
    """``POST /auth/api-key``: an assertion signed with an API key's secret, for tokens."""
    now = now or timezone.now()
    try:
        algorithm, key_id = _assertion_key_id(assertion)
    except InvalidCredentials:
        # Nothing names a key: the failure counts against the client's address alone.
        throttling.record_failure(throttling.client_buckets(client_ip))
        raise
    limit = token_settings.THROTTLE_FAILURES_PER_KEY
    with throttling.counting_failures(throttling.buckets_for("key", key_id, limit, client_ip)):
        api_key = (
            ApiKey.objects.select_related("owner", "owner__token_metadata")
            .filter(key_id=key_id)
            .first()
        )
        if api_key is None or not api_key.is_live(now) or not api_key.owner.is_active:
            raise _refused()
        claims = _verified_claims(assertion, api_key, algorithm, now)
        expires_at = _check_lifetime(claims, now)
        opens_at = _accept_once(api_key, key_id, claims, expires_at, now)
    return _open_session(api_key, issuer=issuer, now=opens_at)


# -- email and password --------------------------------------------------------------------


def _user_by_email(email: str) -> Any:
    users = get_user_model()._default_manager.filter(email__iexact=email)[:2]
    found = list(users)
    return found[0] if len(found) == 1 else None


@sensitive_variables()
def login(
    email: str,
    password: str,
    *,
    issuer: str,
    client_ip: str | None,
    request: Any = None,
    now: datetime | None = None,
) -> KeycloakResult:
    """``POST /auth/login``: an email and password, checked by Django's auth backends."""
    now = now or timezone.now()
    limit = token_settings.THROTTLE_FAILURES_PER_USERNAME
    buckets = throttling.buckets_for("email", email.casefold(), limit, client_ip)
    with throttling.counting_failures(buckets):
        candidate = _user_by_email(email)
        # Unknown emails still go through authenticate(): ModelBackend then runs the hasher
        # once on a dummy password, so the timing does not reveal which emails exist.
        username = candidate.get_username() if candidate is not None else email
        user = authenticate(request, username=username, password=password)
        # Only the one user with that email may log in by it: with no unique candidate, a
        # user whose username happens to be the email must not get in through the fallback.
        if (
            user is None
            or candidate is None
            or user.pk != candidate.pk
            or not user.is_active
            or user.email.casefold() != email.casefold()
        ):
            raise _refused()
    result: KeycloakResult = sessions.start(
        user,
        service=SERVICE,
        scopes=token_settings.API_KEY_SCOPES,
        now=now,
        # Its ID token is addressed to the token service itself, never to AUDIENCE: a
        # resource server checking only aud must not take it for an access token.
        then=lambda refreshed: _mint(user, refreshed, issuer=issuer, audience=issuer, now=now),
    )
    return result


# -- refresh -------------------------------------------------------------------------------


@sensitive_variables()
def _refresh_secret(refresh_jwt: str, issuer: str) -> str:
    try:
        _, claims = keystore.verify(
            refresh_jwt,
            types={"jwt"},
            audience=issuer,
            issuer=issuer,
            require=("exp", "iat", "jti", "sid", "sub"),
        )
    except jws.InvalidSignedToken as exc:
        raise InvalidGrant(REFRESH_MESSAGE) from exc
    secret = claims.get("jti")
    if claims.get("typ") != REFRESH_TOKEN_CLAIM_TYPE or not isinstance(secret, str):
        raise InvalidGrant(REFRESH_MESSAGE)
    return secret


@sensitive_variables()
def refresh(refresh_jwt: str, *, issuer: str, now: datetime | None = None) -> KeycloakResult:
    """``POST /auth/refresh``: rotate the refresh JWT; the session (``session_state``) stays."""
    now = now or timezone.now()
    secret = _refresh_secret(refresh_jwt, issuer)

    def mint(refreshed: sessions.Refreshed) -> KeycloakResult:
        session = refreshed.session
        api_key = session.api_key
        if api_key is not None and not api_key.is_live(now):
            raise sessions.InvalidRefreshToken("The API key is revoked or expired.")
        audience = api_key.key_id if api_key is not None else issuer
        return _mint(session.user, refreshed, issuer=issuer, audience=audience, now=now)

    try:
        result: KeycloakResult = sessions.rotate(secret, service=SERVICE, now=now, then=mint)
    except sessions.InvalidRefreshToken as exc:
        raise InvalidGrant(REFRESH_MESSAGE) from exc
    return result
