"""The counter store (mailer.counters): request limits and delivery counters, in memory and
in Redis, and the send rate limiter (mailer.delivery.limits) on top of it. Clocks are
injected, so nothing here waits for a window to end."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from mailer.counters import MemoryCounters, RedisCounters, counters_for
from mailer.delivery.limits import RateLimiter
from tests.conftest import REDIS_URL, need


def test_memory_limiter_counts_per_key_and_window():
    now = [0.0]
    lim = MemoryCounters(clock=lambda: now[0])
    assert [lim.hit("a", 2, 60) for _ in range(3)] == [True, True, False]
    assert lim.hit("b", 2, 60)
    now[0] = 61
    assert lim.hit("a", 2, 60)
    now[0] = 100  # the window that began at 61 ends at 121: a refusal says when to come back
    assert lim.check("a", 2, 60).retry_after == 0 and lim.check("a", 2, 60).retry_after == 21


def test_memory_limiter_says_when_the_window_ends():
    now = [100.0]
    lim = MemoryCounters(clock=lambda: now[0])
    assert lim.check("a", 1, 3600).allowed
    now[0] = 100.0 + 3599.5
    refused = lim.check("a", 1, 3600)
    assert not refused.allowed and refused.retry_after == 1
    now[0] = 100.0 + 600
    lim2 = MemoryCounters(clock=lambda: now[0])
    lim2.check("b", 0, 3600)
    assert lim2.check("b", 0, 3600).retry_after == 3600


@pytest.mark.redis
def test_redis_limiter_says_when_the_shared_window_ends():
    import redis

    url = need(REDIS_URL, "TEST_REDIS_URL")
    client = redis.Redis.from_url(url)
    prefix = f"test-rl-{time.time_ns()}:"
    try:
        lim = RedisCounters(client, prefix, clock=lambda: 7200.0 + 1234.25)
        assert lim.check("k", 1, 3600).allowed
        refused = lim.check("k", 1, 3600)
        assert (refused.allowed, refused.retry_after) == (False, 3600 - 1234)
    finally:
        for k in client.scan_iter(prefix + "*"):
            client.delete(k)


@pytest.mark.redis
def test_redis_limiter_is_shared_between_instances():
    import redis

    url = need(REDIS_URL, "TEST_REDIS_URL")
    client = redis.Redis.from_url(url)
    prefix = f"test-rl-{time.time_ns()}:"
    try:
        a, b = RedisCounters(client, prefix), RedisCounters(redis.Redis.from_url(url), prefix)
        assert a.hit("k", 2, 3600) and b.hit("k", 2, 3600)
        assert not a.hit("k", 2, 3600)  # the second web process saw the first one's hits
        assert b.hit("other", 2, 3600)
        assert 1 <= a.check("k", 2, 3600).retry_after <= 3600  # refused, with the seconds to the window's end
        at = [7200.0 + 100]
        c = RedisCounters(client, prefix + "clocked:", clock=lambda: at[0])
        assert [c.check("k", 1, 3600).retry_after for _ in range(2)] == [0, 3500]
        assert all(0 < client.ttl(k) <= 3601 for k in client.scan_iter(prefix + "*"))
    finally:
        for k in client.scan_iter(prefix + "*"):
            client.delete(k)


def test_memory_counters_grant_permits_within_a_window_and_keep_holds_and_streaks():
    now = [10.0]
    c = MemoryCounters(clock=lambda: now[0])
    assert [c.take("mailer:rate:all:10", 4, 10) for _ in range(3)] == [4, 4, 2]
    assert c.take("mailer:rate:all:10", 4, 10) == 0  # the window's permits are spent
    assert c.take("mailer:rate:all:11", 4, 10) == 4  # the next second has its own
    assert c.hold("watch", "a", 5) and not c.hold("watch", "b", 5)
    now[0] = 16.0  # a's hold has lapsed: b takes over, and a's late release changes nothing
    assert c.hold("watch", "b", 5)
    c.release("watch", "a")
    assert not c.hold("watch", "c", 5)
    assert [c.add_failures("streak", 2, 0), c.add_failures("streak", 3, 0)] == [2, 5]
    assert c.add_failures("streak", 1, 4) == 1  # a success restarts the streak
    c.reset("streak")
    assert c.add_failures("streak", 1, 0) == 1


def test_one_store_per_process_and_url():
    assert counters_for(None) is counters_for(None)
    assert counters_for(None, "other:") is not counters_for(None)


def test_rate_limiter_keeps_to_the_rate_by_waiting_for_the_next_window():
    """12 messages at 5 per second: three windows, the limiter sleeping to each next one."""
    now, slept, stamps = [100.25], [], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(MemoryCounters(), 5, lambda domain: None, clock=lambda: now[0], sleep=sleep)
    for _ in range(12):
        limiter.acquire("example.org")
        stamps.append(int(now[0]))
    assert Counter(stamps) == {100: 5, 101: 5, 102: 2}
    assert slept == [0.75, 1.0]


def test_rate_limiter_applies_a_domain_rate_besides_the_overall_one():
    now = [0.0]
    limiter = RateLimiter(
        MemoryCounters(),
        100,
        {"nhs.example": 2}.get,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    for domain in ["nhs.example"] * 3 + ["other.example"] * 3:
        limiter.acquire(domain)
    assert now[0] == 1.0  # only the third NHS message waited for the next second
