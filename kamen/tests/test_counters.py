"""Rate-limit counters survive a cache outage: they count in this process instead, never
"allow everything", and go back to the shared cache when it answers again."""

import time

import pytest
import redis
from django.core.cache import cache
from django.test import Client, override_settings

from kamen.security import LocalCounters, counters


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    counters.reset()
    yield
    cache.clear()
    counters.reset()


class DownCache:
    """Redis refusing connections, as django's RedisCache reports it."""

    def __getattr__(self, name):
        def broken(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return broken


@pytest.fixture
def broken_cache(monkeypatch):
    monkeypatch.setattr("kamen.security.cache", DownCache())


def test_local_counters_count_within_the_window_and_forget_after_it(monkeypatch):
    local = LocalCounters()
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])

    counts = [local.bump("k", 60) for _n in range(3)]
    now[0] += 61

    assert counts == [1, 2, 3]
    assert local.get("k") is None
    assert local.bump("k", 60) == 1


def test_local_counters_stay_bounded_under_a_flood_of_keys():
    local = LocalCounters(max_keys=100)

    for number in range(1000):
        local.bump(f"ip:{number}", 60)

    assert len(local._values) <= 100
    assert local.get("ip:999") == 1


@pytest.mark.django_db
@override_settings(KAMEN_RATE_LIMITS=[("login", r"^/agent/login/$", ("POST",), 2, 60)])
def test_with_the_cache_down_the_rate_limit_still_refuses_past_the_limit(broken_cache):
    client = Client(raise_request_exception=False)

    codes = [client.post("/agent/login/", {"username": "a", "password": "b"}).status_code for _n in range(3)]

    assert codes[:2] != [429, 429] and 500 not in codes
    assert codes[-1] == 429


def test_after_an_outage_the_shared_cache_is_used_again(monkeypatch):
    counters.retry_seconds = 0.05
    try:
        monkeypatch.setattr("kamen.security.cache", DownCache())
        assert counters.bump("rate:test:x", 60) == 1  # local
        assert counters.is_cache_down
        monkeypatch.undo()
        time.sleep(0.06)

        assert counters.bump("rate:test:y", 60) == 1
        assert not counters.is_cache_down
        assert cache.get("rate:test:y") == 1
    finally:
        counters.retry_seconds = 2.0


def test_a_shared_counter_counts_in_one_round_trip_and_always_expires_with_its_window(monkeypatch):
    key = "rate:test:expiry"
    counters.bump("rate:test:warm-up", 60)  # the connection is open
    sent = []
    original_send = redis.connection.Connection.send_packed_command

    def counted_send(connection, command, *args, **kwargs):
        sent.append(command)
        return original_send(connection, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted_send)

    counts = [counters.bump(key, 60) for _n in range(3)]
    monkeypatch.undo()
    redis_key = cache.make_and_validate_key(key)
    client = cache._cache.get_client(redis_key)
    ttl_while_counting = client.ttl(redis_key)
    client.delete(redis_key)
    again = counters.bump(key, 60)

    assert counts == [1, 2, 3]
    assert len(sent) == 3  # one round trip per request counted (EVALSHA)
    assert 0 < ttl_while_counting <= 60
    assert again == 1
    assert 0 < client.ttl(redis_key) <= 60
    assert cache.get(key) == 1
