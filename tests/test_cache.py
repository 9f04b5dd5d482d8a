"""``django_tokens.cache.RedisCache``: Django's Redis backend, one ``redis.Redis`` per pool."""

from __future__ import annotations

import os
import threading

import pytest
import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from django_tokens.cache import RedisCache

#: Nothing listens here: the client is built without connecting.
NOWHERE = "redis://127.0.0.1:9/0"


def test_the_write_client_is_built_once_and_kept():
    cache = RedisCache(NOWHERE, {})
    client = cache._cache.get_client(write=True)
    assert isinstance(client, redis.Redis)
    assert cache._cache.get_client(write=True) is client
    assert cache._cache.get_client("any key") is client  # one server: reads go there too
    assert client.connection_pool is cache._cache._pools[0]


def test_django_s_own_backend_builds_a_client_per_call():
    """What the backend exists for: without it, every cache call pays a client's construction."""
    cache = DjangoRedisCache(NOWHERE, {})
    assert cache._cache.get_client(write=True) is not cache._cache.get_client(write=True)


def test_with_replicas_reads_and_writes_keep_a_client_each_on_their_own_server():
    cache = RedisCache(["redis://127.0.0.1:9/0", "redis://127.0.0.1:10/0"], {})
    writer = cache._cache.get_client(write=True)
    reader = cache._cache.get_client()
    assert reader is not writer
    assert cache._cache.get_client() is reader
    assert writer.connection_pool.connection_kwargs["port"] == 9
    assert reader.connection_pool.connection_kwargs["port"] == 10


def test_options_reach_the_pool_as_on_django_s_backend():
    options = {"socket_timeout": 1, "socket_connect_timeout": 1}
    ours = RedisCache(NOWHERE, {"OPTIONS": options})._cache.get_client(write=True)
    django = DjangoRedisCache(NOWHERE, {"OPTIONS": options})._cache.get_client(write=True)
    for name in ("socket_timeout", "socket_connect_timeout", "host", "port", "db", "parser_class"):
        assert (
            ours.connection_pool.connection_kwargs[name]
            == (django.connection_pool.connection_kwargs[name])
        )
    assert ours.connection_pool.connection_kwargs["socket_timeout"] == 1


def test_an_unreachable_server_raises_as_on_django_s_backend():
    with pytest.raises(redis.exceptions.ConnectionError):
        RedisCache(NOWHERE, {}).get("key")


@pytest.mark.redis
def test_every_cache_operation_works_on_a_real_redis_through_one_client():
    cache = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": f"test-cache-{os.getpid()}"})
    try:
        assert cache.add("counter", 1, timeout=30)
        assert not cache.add("counter", 5, timeout=30)
        assert cache.incr("counter") == 2
        cache.set_many({"a": {"nested": [1, 2]}, "b": "text"}, timeout=30)
        assert cache.get_many(["a", "b", "missing"]) == {"a": {"nested": [1, 2]}, "b": "text"}
        assert cache.touch("a", timeout=60)
        cache.delete_many(["a", "b"])
        assert cache.get("a", "gone") == "gone"
        assert cache.has_key("counter")
        assert len(cache._cache._clients) == 1
    finally:
        cache.delete_many(["counter", "a", "b"])


@pytest.mark.redis
def test_threads_share_the_client_and_each_gets_its_own_answers():
    cache = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": f"test-cache-threads-{os.getpid()}"})
    client = cache._cache.get_client(write=True)
    failures: list[str] = []
    keys = [f"thread-{number}" for number in range(16)]

    def work(key: str) -> None:
        for round_number in range(50):
            cache.set(key, f"{key}:{round_number}", timeout=30)
            if cache.get(key) != f"{key}:{round_number}":
                failures.append(key)
        if cache._cache.get_client(write=True) is not client:
            failures.append(f"{key}: another client")

    threads = [threading.Thread(target=work, args=(key,)) for key in keys]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert cache.get_many(keys) == {key: f"{key}:49" for key in keys}
    finally:
        cache.delete_many(keys)
