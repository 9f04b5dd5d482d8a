"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from django_tokens import keystore, revocation_feed

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
ON_REDIS = bool(os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://...")
    for item in items:
        if "postgres" in item.keywords and not ON_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not ON_REDIS:
            item.add_marker(skip_redis)


def clear_cache() -> None:
    """Empty this run's cache. On Redis only this run's keys go (its KEY_PREFIX), never the
    whole database, so runs sharing one Redis do not wipe each other's state."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        cache.clear()
        return
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Each test starts with an empty cache and no keys loaded in this process."""
    clear_cache()
    keystore.reset()
    revocation_feed.reset()
    yield
    keystore.reset()
    revocation_feed.reset()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="alice", password="alice-password", email="alice@example.com"
    )


@pytest.fixture
def password_credentials() -> dict[str, str]:
    return {"username": "alice", "password": "alice-password"}


@pytest.fixture
def db_vendor() -> str:
    return connection.vendor
