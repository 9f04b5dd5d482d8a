"""The revocation feed on a real Redis: marks published with their write, answered without a
round trip once known, and read from Redis again whenever the subscription cannot vouch for
what it missed (a reconnection, a silent connection, the feed switched off)."""

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone

from django_tokens import revocation_feed, sessions
from django_tokens.cache import redis_client
from django_tokens.conf import token_settings
from django_tokens.revocation_feed import Feed

pytestmark = pytest.mark.redis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def round_trips() -> Iterator[list[str]]:
    """The commands redis-py sends as request and answer (not pub/sub traffic), in order."""
    sent: list[str] = []
    original = redis.Redis.execute_command

    def counted(self, *args, **options):
        sent.append(str(args[0]))
        return original(self, *args, **options)

    redis.Redis.execute_command = counted
    try:
        yield sent
    finally:
        redis.Redis.execute_command = original


def mark_key() -> str:
    return f"{sessions.MARK_PREFIX}:sid:{uuid.uuid4().hex}"


def set_unannounced(key: str) -> None:
    """A mark the feed was not told of: as if published while its connection was down."""
    caches[token_settings.CACHE_ALIAS].set(key, 1, timeout=60)


def live_feed(clock: Clock | None = None, client: redis.Redis | None = None) -> Feed:
    """A feed of its own, as another process would have: its own connection."""
    cache = caches[token_settings.CACHE_ALIAS]
    feed = Feed(cache, client or redis_client(cache), clock=clock or time.monotonic)
    deadline = time.monotonic() + 5
    while not feed._live():  # the SUBSCRIBE's and the first PING's answers
        assert time.monotonic() < deadline, "the feed never became live"
        time.sleep(0.005)
    return feed


def arrived(feed: Feed, key: str) -> bool:
    """Whether the feed holds ``key`` as revoked, waiting at most a second for the message."""
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        with feed._lock:
            feed._live()
            if feed._known_revoked(key):
                return True
        time.sleep(0.005)
    return False


def kill_connection(feed: Feed) -> None:
    host, port = feed._pubsub.connection._sock.getsockname()[:2]
    cache = caches[token_settings.CACHE_ALIAS]
    assert redis_client(cache).client_kill(f"{host}:{port}")


def test_a_mark_is_written_with_its_timeout_and_reads_back_through_the_cache_api():
    key = mark_key()
    revocation_feed.write_marks({key: (1_700_000_000, 90)})

    cache = caches[token_settings.CACHE_ALIAS]
    assert cache.get(key) == 1_700_000_000
    assert 80 < redis_client(cache).ttl(cache.make_and_validate_key(key)) <= 90


def test_a_known_absent_mark_is_answered_without_a_round_trip():
    feed = live_feed()
    key = mark_key()
    with round_trips() as first:
        assert feed.is_revoked([key]) is False
    with round_trips() as again:
        for _ in range(20):
            assert feed.is_revoked([key]) is False
    assert first == ["GET"]
    assert again == []


def test_a_mark_written_elsewhere_reaches_a_feed_that_had_read_it_absent():
    feed = live_feed()
    key = mark_key()
    assert feed.is_revoked([key]) is False

    revocation_feed.write_marks({key: (1, 60)})  # this process's module feed, or none

    assert arrived(feed, key)
    with round_trips() as sent:
        assert feed.is_revoked([key]) is True
    assert sent == []


def test_after_a_reconnection_what_was_read_absent_is_read_again():
    feed = live_feed()
    key = mark_key()
    assert feed.is_revoked([key]) is False

    kill_connection(feed)
    set_unannounced(key)

    assert feed.is_revoked([key]) is True


class SilentLink:
    """A TCP relay to Redis that can go silent: what either side sends is then dropped while
    the connection stays open, as on a network that lost its route."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.silent = threading.Event()
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                near, _ = self._listener.accept()
                far = socket.create_connection(self._upstream)
                self._sockets += [near, far]
                for source, target in ((near, far), (far, near)):
                    threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.silent.is_set():
                    target.sendall(data)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def silent_link() -> Iterator[SilentLink]:
    pool = redis_client(caches[token_settings.CACHE_ALIAS]).connection_pool
    kwargs = pool.connection_kwargs
    link = SilentLink((kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)))
    yield link
    link.close()


def feed_through(link: SilentLink, clock: Clock) -> Feed:
    cache = caches[token_settings.CACHE_ALIAS]
    db = redis_client(cache).connection_pool.connection_kwargs.get("db", 0)
    client = redis.Redis(host="127.0.0.1", port=link.port, db=db, socket_timeout=1)
    return live_feed(clock, client)


def test_a_feed_whose_pings_go_unanswered_reads_redis(silent_link):
    clock = Clock()
    feed = feed_through(silent_link, clock)
    key = mark_key()
    assert feed.is_revoked([key]) is False

    silent_link.silent.set()
    revocation_feed.write_marks({key: (1, 60)})  # its message is lost on the way
    assert feed.is_revoked([key]) is False  # the last PING was answered a moment ago
    clock.now += revocation_feed.PONG_WITHIN + 0.1

    assert feed.is_revoked([key]) is True  # read from Redis


def test_a_feed_silent_for_long_subscribes_again(silent_link):
    clock = Clock()
    feed = feed_through(silent_link, clock)
    assert feed.is_revoked([mark_key()]) is False
    silent_link.silent.set()
    clock.now += revocation_feed.PING_EVERY
    assert feed.is_revoked([mark_key()]) is False  # sends a PING that goes unanswered
    assert not feed.broken

    clock.now += revocation_feed.RECONNECT_AFTER + 0.1
    assert feed.is_revoked([mark_key()]) is False

    assert feed.broken


def test_two_marks_are_read_in_one_round_trip_and_the_revoked_one_is_then_known():
    feed = live_feed()
    absent, revoked = mark_key(), mark_key()
    set_unannounced(revoked)
    with round_trips() as sent:
        assert feed.is_revoked([absent, revoked]) is True
        assert feed.is_revoked([revoked]) is True
    assert sent == ["MGET"]


def test_the_process_that_revokes_knows_at_once(user):
    session_id = str(uuid.uuid4())
    claims = {"sid": session_id}
    assert sessions.is_revoked(claims) is False

    sessions.set_marks([session_id], now=timezone.now())

    with round_trips() as sent:
        assert sessions.is_revoked(claims) is True
    assert sent == []


def test_with_the_feed_off_every_check_reads_redis():
    tokens = {**settings.DJANGO_TOKENS, "REVOCATION_FEED": False}
    with override_settings(DJANGO_TOKENS=tokens):
        revocation_feed.reset()
        claims = {"sid": str(uuid.uuid4())}
        with round_trips() as sent:
            for _ in range(3):
                assert sessions.is_revoked(claims) is False
        assert sent == ["GET", "GET", "GET"]
        assert revocation_feed._local_feed() is None
