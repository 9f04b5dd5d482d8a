"""Revocation marks pushed to every process over Redis pub/sub, so that verifying an access
token costs no Redis round trip.

A revocation writes its marks and publishes their keys in one Lua script: both happen, or
neither. Each process subscribes once to the channel of its cache (its Redis database and
``KEY_PREFIX``) and, before every check, reads what has arrived on that connection without
waiting. It keeps:

- the marks it was told of (*revoked*), until no access token could still carry them;
- the marks it read from Redis and found absent (*absent*), each stamped with the
  subscription it was read under.

An *absent* entry is trusted only while that same subscription is live: confirmed by Redis,
answering a PING within :data:`PONG_WITHIN` seconds, and never reconnected since (a
reconnection may have missed messages, so it starts a new subscription and forgets every
*absent* entry). Otherwise the check reads Redis, as it would without the feed. A mark
published before a check is read by that check when its message has reached the process's
socket — the delay of one loopback or LAN packet, as for a plain read racing the write.

With another cache backend, or with ``REVOCATION_FEED`` off, marks are written and read
through Django's cache API alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.cache import caches

from django_tokens.cache import redis_client
from django_tokens.conf import max_token_lifetime, token_settings

logger = logging.getLogger(__name__)

#: The feed counts as live while a PING was answered this recently (seconds).
PONG_WITHIN = 1.0
#: A PING goes out when none has for this long (seconds), on the next check.
PING_EVERY = 0.25
#: After this long without an answer the subscription is dropped and made again (seconds).
RECONNECT_AFTER = 5.0
#: Back-off after the feed failed to subscribe (seconds): checks read Redis meanwhile.
RETRY_AFTER = 1.0
#: How long the rest of a message that has begun to arrive may take (seconds).
READ_TIMEOUT = 0.5
#: Bound of each of the two tables; a full table is emptied (nothing wrong is kept).
MAX_ENTRIES = 65_536

CHANNEL_KEY = "django_tokens:revocations"

# KEYS: the marks' cache keys; ARGV[1]: the channel, ARGV[2]: the message, then for each
# key its value and its timeout in seconds.
_MARK_SCRIPT = """
for i, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1 + 2 * i], 'EX', ARGV[2 + 2 * i])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return #KEYS
"""


def _channel(cache: Any, client: Any) -> str:
    """One channel per Redis database and key prefix: pub/sub ignores database numbers."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return f"{db}:{cache.make_and_validate_key(CHANNEL_KEY)}"


def write_marks(marks: Mapping[str, tuple[int, int]]) -> None:
    """Write revocation marks ``{key: (value, timeout)}`` and tell every process.

    Raises what the cache raises; the caller logs it."""
    if not marks:
        return
    cache = caches[token_settings.CACHE_ALIAS]
    client = redis_client(cache)
    if client is None:
        for key, (value, timeout) in marks.items():
            cache.set(key, value, timeout=timeout)
        return
    keys = list(marks)
    arguments: list[Any] = [_channel(cache, client), "\n".join(keys)]
    for value, timeout in marks.values():
        arguments += [int(value), max(int(timeout), 1)]
    cache_keys = [cache.make_and_validate_key(key) for key in keys]
    client.eval(_MARK_SCRIPT, len(cache_keys), *cache_keys, *arguments)
    feed = _local_feed(create=False)
    if feed is not None:  # this process need not wait for its own message
        feed.learn(keys)


class Feed:
    """One process's subscription and the two tables it keeps (see the module text)."""

    def __init__(self, cache: Any, client: Any, *, clock: Any = time.monotonic) -> None:
        self._cache = cache
        self._clock = clock
        self._lock = threading.Lock()
        self._revoked: dict[str, float] = {}
        self._absent: dict[str, int] = {}
        self._subscription = 0
        self._confirmed = False
        self._pong_at = -1.0
        self._ping_at = -1.0
        self._unanswered_since: float | None = None
        self._broken = False
        self._client = client  # a client that owns its pool closes it when collected
        self._pubsub = client.pubsub()
        self._pubsub.subscribe(_channel(cache, client))
        self._pubsub.connection.register_connect_callback(self._reconnected)
        self._ping()

    # -- the subscription ------------------------------------------------------------------

    def _reconnected(self, connection: Any) -> None:
        """redis-py reconnected and subscribes again: messages may have been missed."""
        self._new_subscription()

    def _new_subscription(self) -> None:
        self._subscription += 1
        self._confirmed = False
        self._absent.clear()

    def _ping(self) -> None:
        self._ping_at = self._clock()
        if self._unanswered_since is None:
            self._unanswered_since = self._ping_at
        self._pubsub.ping()

    def _drain(self) -> None:
        """Handle every message that has arrived, without waiting for more. A message whose
        first bytes have arrived is read whole: a read that gave up halfway would make
        redis-py drop the connection."""
        connection = self._pubsub.connection
        while connection.can_read(timeout=0):
            message = self._pubsub.get_message(timeout=READ_TIMEOUT)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                data = message["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                self._learn(text.split("\n"))
            elif kind == "subscribe":
                self._new_subscription()
                self._confirmed = True
            elif kind == "pong":
                self._pong_at = self._clock()
                self._unanswered_since = None

    def _live(self) -> bool:
        """Drain, keep the PINGs going; True when *absent* entries can be trusted."""
        if self._broken:
            return False
        try:
            self._drain()
            now = self._clock()
            if now - self._ping_at >= PING_EVERY:
                self._ping()
        except Exception as exc:
            logger.warning("Revocation feed lost; reading marks from the cache: %r", exc)
            self._new_subscription()
            self.close()
            return False
        silent = self._unanswered_since is not None and now - self._unanswered_since
        if silent and silent > RECONNECT_AFTER:
            logger.warning("Revocation feed unanswered for %ss; subscribing again", RECONNECT_AFTER)
            self._new_subscription()
            self.close()
            return False
        return self._confirmed and now - self._pong_at <= PONG_WITHIN

    def close(self) -> None:
        self._broken = True
        with contextlib.suppress(Exception):  # closing what may be a broken connection
            self._pubsub.close()

    @property
    def broken(self) -> bool:
        return self._broken

    # -- the tables ------------------------------------------------------------------------

    def _learn(self, keys: Iterable[str]) -> None:
        until = self._clock() + max_token_lifetime()
        if len(self._revoked) >= MAX_ENTRIES:
            self._revoked.clear()  # forgotten marks are read from the cache again
        for key in keys:
            if key:
                self._revoked[key] = until
                self._absent.pop(key, None)

    def learn(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._learn(keys)

    def _known_revoked(self, key: str) -> bool:
        until = self._revoked.get(key)
        if until is None:
            return False
        if until < self._clock():
            del self._revoked[key]
            return False
        return True

    def is_revoked(self, keys: list[str]) -> bool:
        """Whether any of the marks ``keys`` is set; reads the cache only for keys it
        cannot answer from the feed."""
        with self._lock:
            live = self._live()
            if any(self._known_revoked(key) for key in keys):
                return True
            subscription = self._subscription
            unknown = [key for key in keys if not live or self._absent.get(key) != subscription]
        if not unknown:
            return False
        if len(unknown) == 1:
            found = [] if self._cache.get(unknown[0]) is None else unknown
        else:
            found = list(self._cache.get_many(unknown))
        with self._lock:
            if found:
                self._learn(found)
                return True
            if live and subscription == self._subscription:
                if len(self._absent) >= MAX_ENTRIES:
                    self._absent.clear()
                for key in unknown:
                    if key not in self._revoked:
                        self._absent[key] = subscription
        return False


_feed: Feed | None = None
_feed_pid = 0
_retry_at = 0.0
_feed_lock = threading.Lock()


def _local_feed(*, create: bool = True) -> Feed | None:
    """This process's feed: made on first use (after a fork, made anew)."""
    global _feed, _feed_pid, _retry_at
    feed = _feed
    if feed is not None and _feed_pid == os.getpid() and not feed.broken:
        return feed
    if not create or not token_settings.REVOCATION_FEED:
        return None
    with _feed_lock:
        if _feed is not None and _feed_pid == os.getpid() and not _feed.broken:
            return _feed
        if time.monotonic() < _retry_at:
            return None
        cache = caches[token_settings.CACHE_ALIAS]
        client = redis_client(cache)
        if client is None:
            return None
        try:
            _feed, _feed_pid = Feed(cache, client), os.getpid()
        except Exception as exc:
            logger.warning("Revocation feed unavailable; reading marks from the cache: %r", exc)
            _feed, _retry_at = None, time.monotonic() + RETRY_AFTER
        return _feed


def is_revoked(keys: list[str]) -> bool:
    """Whether any of the marks ``keys`` is set. Raises what the cache raises."""
    feed = _local_feed()
    if feed is None:
        cache = caches[token_settings.CACHE_ALIAS]
        if len(keys) == 1:
            return cache.get(keys[0]) is not None
        return bool(cache.get_many(keys))
    return feed.is_revoked(keys)


def reset() -> None:
    """Close this process's feed (tests; a changed cache setting)."""
    global _feed, _retry_at
    with _feed_lock:
        if _feed is not None and _feed_pid == os.getpid():
            _feed.close()
        _feed, _retry_at = None, 0.0
