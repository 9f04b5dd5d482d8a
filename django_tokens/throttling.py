"""Failure throttles counted in the shared cache, so every server process sees the same count.

Fixed windows of ``THROTTLE_WINDOW`` seconds, counted before the credentials are checked: on
Django's Redis backend with one script per attempt (one round trip for every counter), on any
other backend with ``add()`` and ``incr()``. When the cache
cannot be reached the throttle fails closed
(:class:`~django_tokens.errors.TemporarilyUnavailable`): an attacker must not gain unlimited
guesses by knocking the cache over.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.cache import caches
from django.http import HttpRequest
from rest_framework.settings import api_settings as drf_settings
from rest_framework.throttling import BaseThrottle

from django_tokens.cache import redis_client
from django_tokens.conf import token_settings
from django_tokens.errors import TemporarilyUnavailable, TooManyAttempts

logger = logging.getLogger(__name__)

PREFIX = "django_tokens:failures"


def address_of(request: HttpRequest) -> str | None:
    """The client address: ``REMOTE_ADDR``, or, when DRF's ``NUM_PROXIES`` says how many
    proxies to trust, the address they put in ``X-Forwarded-For`` (as DRF's throttles read
    it). Without ``NUM_PROXIES`` the header is the client's to forge, so it is not read."""
    if drf_settings.NUM_PROXIES is None:
        return request.META.get("REMOTE_ADDR") or None
    return BaseThrottle().get_ident(request) or None  # type: ignore[arg-type]  # reads META


@dataclass(frozen=True)
class Bucket:
    """One thing failures are counted against: ``("user", "alice")``, ``("ip", "10.0.0.1")``."""

    kind: str
    value: str
    limit: int

    def key(self, window_start: int) -> str:
        # Hashed: the key must not carry a username or address into cache dumps verbatim.
        value = hashlib.sha256(self.value.encode()).hexdigest()[:32]
        return f"{PREFIX}:{self.kind}:{value}:{window_start}"


def client_buckets(client_ip: str | None) -> list[Bucket]:
    """The client address's bucket, when the address is known."""
    if not client_ip:
        return []
    return [Bucket("ip", client_ip, token_settings.THROTTLE_FAILURES_PER_IP)]


def buckets_for(kind: str, value: str, limit: int, client_ip: str | None) -> list[Bucket]:
    """The account's bucket first, then the client address's."""
    return [Bucket(kind, value, limit), *client_buckets(client_ip)]


#: On Redis, every bucket of an attempt is counted in one round trip: INCR, and a new
#: counter expires with its window. Atomic, as Redis runs a script alone.
_COUNT_SCRIPT = """
local counts = {}
for index, key in ipairs(KEYS) do
    local count = redis.call('INCR', key)
    if count == 1 then redis.call('EXPIRE', key, ARGV[1]) end
    counts[index] = count
end
return counts
"""

#: A success forgets the account's failures (KEYS[1] when ARGV[1] is 1) and takes the
#: attempt back from the other counters that still exist, in one round trip.
_FORGET_SCRIPT = """
local first = 1
if ARGV[1] == '1' then
    redis.call('DEL', KEYS[1])
    first = 2
end
for index = first, #KEYS do
    if redis.call('EXISTS', KEYS[index]) == 1 then redis.call('DECR', KEYS[index]) end
end
return 0
"""


def _window(now: float) -> tuple[int, int]:
    size = token_settings.THROTTLE_WINDOW
    start = int(now) // size * size
    return start, start + size


def _count(buckets: Sequence[Bucket], now: float) -> list[tuple[Bucket, int]]:
    """Add one to every enabled bucket (a limit of 0 disables one); the new counts."""
    start, end = _window(now)
    timeout = int(end - now) + 1
    cache = caches[token_settings.CACHE_ALIAS]
    enabled = [bucket for bucket in buckets if bucket.limit > 0]
    counts = []
    try:
        redis = redis_client(cache)
        if redis is not None and enabled:
            keys = [cache.make_and_validate_key(bucket.key(start)) for bucket in enabled]
            raised = redis.eval(_COUNT_SCRIPT, len(keys), *keys, timeout)
            return [(bucket, int(count)) for bucket, count in zip(enabled, raised, strict=True)]
        for bucket in enabled:
            key = bucket.key(start)
            if cache.add(key, 1, timeout=timeout):
                counts.append((bucket, 1))
                continue
            try:
                counts.append((bucket, cache.incr(key)))
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, timeout=timeout)
                counts.append((bucket, 1))
    except Exception as exc:
        logger.error("Failure throttle unreachable; refusing the attempt: %r", exc)
        raise TemporarilyUnavailable() from exc
    return counts


def record_failure(buckets: Sequence[Bucket], *, now: float | None = None) -> None:
    """Count one failure against every enabled bucket."""
    _count(buckets, time.time() if now is None else now)


def _forget(buckets: Sequence[Bucket], now: float) -> None:
    """Forget the account's failures (the first bucket) and take the attempt back from
    the others."""
    start = _window(now)[0]
    cache = caches[token_settings.CACHE_ALIAS]
    enabled = [(index, bucket) for index, bucket in enumerate(buckets) if bucket.limit > 0]
    try:
        redis = redis_client(cache)
    except Exception as exc:
        logger.warning("Could not update a failure counter: %r", exc)
        return
    if redis is not None:
        if enabled:
            keys = [cache.make_and_validate_key(bucket.key(start)) for _, bucket in enabled]
            whole = 1 if enabled[0][0] == 0 else 0
            try:
                redis.eval(_FORGET_SCRIPT, len(keys), *keys, whole)
            except Exception as exc:
                logger.warning("Could not update a failure counter: %r", exc)
        return
    for index, bucket in enabled:
        whole = index == 0
        try:
            if whole:
                cache.delete(bucket.key(start))
            else:
                cache.decr(bucket.key(start))
        except ValueError:
            pass  # the window turned meanwhile: nothing to take back
        except Exception as exc:
            logger.warning("Could not update a failure counter: %r", exc)


@contextmanager
def counting_failures(buckets: Sequence[Bucket], *, now: float | None = None) -> Iterator[None]:
    """Guard a credential check with the failure throttles.

    The attempt is counted *before* the credentials are checked, so guesses sent in
    parallel cannot all pass while the password hash runs; over the limit, the attempt is
    refused with :class:`TooManyAttempts`. When the block raises :class:`InvalidCredentials`
    the attempt stays counted as a failure. When it succeeds, the account's failures (the
    first bucket) are forgotten and the attempt is taken back from the other buckets.
    """
    now = time.time() if now is None else now
    counts = _count(buckets, now)
    if any(count > bucket.limit for bucket, count in counts):
        raise TooManyAttempts(retry_after=int(_window(now)[1] - now) + 1)
    yield
    _forget(buckets, now)
