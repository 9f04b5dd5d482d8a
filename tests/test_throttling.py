"""Failure throttles: counted before the credentials are checked, per account and address."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_tokens import throttling
from django_tokens.errors import InvalidCredentials, TooManyAttempts


def test_attempts_in_flight_at_once_are_counted_before_any_check_finishes() -> None:
    # Three requests whose password checks overlap: the third is refused although none
    # of the first two has failed yet.
    buckets = [throttling.Bucket("username", "alice", 2)]
    with ExitStack() as in_flight:
        in_flight.enter_context(throttling.counting_failures(buckets, now=1000.0))
        in_flight.enter_context(throttling.counting_failures(buckets, now=1000.0))
        with pytest.raises(TooManyAttempts):
            in_flight.enter_context(throttling.counting_failures(buckets, now=1000.0))


def test_a_success_forgets_the_accounts_failures_and_takes_back_the_address_attempt() -> None:
    account = throttling.Bucket("username", "bob", 3)
    address = throttling.Bucket("ip", "192.0.2.7", 3)
    for _ in range(2):
        with (
            pytest.raises(InvalidCredentials),
            throttling.counting_failures([account, address], now=1000.0),
        ):
            raise InvalidCredentials()
    with throttling.counting_failures([account, address], now=1000.0):
        pass
    # The account starts afresh: three more failures are allowed.
    for _ in range(3):
        with pytest.raises(InvalidCredentials), throttling.counting_failures([account], now=1000.0):
            raise InvalidCredentials()
    # The address kept its two failures but not the success: one attempt left, not none.
    elsewhere = throttling.Bucket("username", "carol", 100)
    with (
        pytest.raises(InvalidCredentials),
        throttling.counting_failures([elsewhere, address], now=1000.0),
    ):
        raise InvalidCredentials()
    with (
        pytest.raises(TooManyAttempts),
        throttling.counting_failures([elsewhere, address], now=1000.0),
    ):
        pass


def wrong_login(client: Client, username: str, **headers: Any) -> int:
    return client.post(
        "/api/token",
        {"username": username, "password": "wrong"},
        content_type="application/json",
        headers=headers,
    ).status_code


@pytest.mark.django_db
def test_a_forged_x_forwarded_for_does_not_escape_the_per_address_limit(client: Client) -> None:
    limits = {**settings.DJANGO_TOKENS, "THROTTLE_FAILURES_PER_IP": 3}
    with override_settings(DJANGO_TOKENS=limits):
        statuses = [
            wrong_login(client, f"user{n}", x_forwarded_for=f"198.51.100.{n}") for n in range(5)
        ]
    assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.django_db
def test_x_forwarded_for_is_read_when_num_proxies_says_to_trust_it(client: Client) -> None:
    limits = {**settings.DJANGO_TOKENS, "THROTTLE_FAILURES_PER_IP": 3}
    with override_settings(
        DJANGO_TOKENS=limits, REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    ):
        from rest_framework.settings import api_settings

        api_settings.reload()
        try:
            statuses = [
                wrong_login(client, f"user{n}", x_forwarded_for=f"198.51.100.{n}") for n in range(5)
            ]
        finally:
            api_settings.reload()
    assert statuses == [401] * 5
