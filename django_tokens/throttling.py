"""Failure throttles counted in the shared cache, so every server process sees the same count.

Fixed windows of ``THROTTLE_WINDOW`` seconds; a counter is created with ``add()`` and raised
with ``incr()``, both atomic on Redis. When the cache cannot be reached the throttle fails
closed (:class:`~django_tokens.errors.TemporarilyUnavailable`): an attacker must not gain
unlimited guesses by knocking the cache over.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.cache import caches

from django_tokens.conf import token_settings
from django_tokens.errors import InvalidCredentials, TemporarilyUnavailable, TooManyAttempts

logger = logging.getLogger(__name__)

PREFIX = "django_tokens:failures"


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


def _window(now: float) -> tuple[int, int]:
    size = token_settings.THROTTLE_WINDOW
    start = int(now) // size * size
    return start, start + size


def check(buckets: Sequence[Bucket], *, now: float | None = None) -> None:
    """Raise TooManyAttempts when any bucket is full for the current window."""
    now = time.time() if now is None else now
    start, end = _window(now)
    keys = {bucket.key(start): bucket for bucket in buckets if bucket.limit > 0}
    if not keys:
        return
    try:
        counts = caches[token_settings.CACHE_ALIAS].get_many(list(keys))
    except Exception as exc:
        logger.error("Failure throttle unreadable; refusing the attempt.", exc_info=True)
        raise TemporarilyUnavailable() from exc
    for key, count in counts.items():
        if int(count) >= keys[key].limit:
            raise TooManyAttempts(retry_after=int(end - now) + 1)


def record_failure(buckets: Sequence[Bucket], *, now: float | None = None) -> None:
    """Count one failure against every enabled bucket (a limit of 0 disables a bucket)."""
    buckets = [bucket for bucket in buckets if bucket.limit > 0]
    if not buckets:
        return
    now = time.time() if now is None else now
    start, end = _window(now)
    cache = caches[token_settings.CACHE_ALIAS]
    timeout = int(end - now) + 1
    try:
        for bucket in buckets:
            key = bucket.key(start)
            if not cache.add(key, 1, timeout=timeout):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add() and incr()
                    cache.add(key, 1, timeout=timeout)
    except Exception as exc:
        logger.error("Failure throttle unwritable; refusing the attempt.", exc_info=True)
        raise TemporarilyUnavailable() from exc


def clear(bucket: Bucket, *, now: float | None = None) -> None:
    """Forget a bucket's failures (a user who logged in successfully)."""
    if bucket.limit <= 0:
        return
    now = time.time() if now is None else now
    try:
        caches[token_settings.CACHE_ALIAS].delete(bucket.key(_window(now)[0]))
    except Exception:
        logger.warning("Could not clear a failure counter.", exc_info=True)


@contextmanager
def counting_failures(buckets: Sequence[Bucket]) -> Iterator[None]:
    """Guard a credential check: refuse at once when a bucket is full; count a failure
    against every bucket when the block raises :class:`InvalidCredentials`; forget the first
    bucket's failures (the account's) when it succeeds."""
    check(buckets)
    try:
        yield
    except InvalidCredentials:
        record_failure(buckets)
        raise
    if buckets:
        clear(buckets[0])
