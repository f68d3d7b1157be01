"""Counters shared by every process: one interface, a Redis and an in-memory backend.

Two kinds of user count things:

* request limits on the web edge (subscribe, "email me my link", partner submissions, test
  sends): :meth:`CounterStore.check` counts one request in a fixed window and says when
  the window ends, so a refusal can carry ``Retry-After``;
* delivery (send rates, the circuit breaker, the edition watchdog): :meth:`~CounterStore.take`
  grants permits from a one-second window, :meth:`~CounterStore.add_failures` keeps a
  failure streak, :meth:`~CounterStore.hold` / :meth:`~CounterStore.release` keep a key for
  one holder.

With ``REDIS_URL`` the counts live in Redis (:class:`RedisCounters`), so every web process
and every worker on every machine counts together; without it they live in this process
(:class:`MemoryCounters`, enough for the embedded single-process setup). Callers never ask
which one they have. Both take their clocks as arguments so tests need not sleep.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis

log = logging.getLogger(__name__)

T = TypeVar("T")

# A day: a failure streak nobody has touched for that long is forgotten.
STREAK_TTL_SECONDS = 86_400


@dataclass(frozen=True)
class Verdict:
    """One counted request: ``allowed`` within the limit, else ``retry_after`` seconds
    (at least 1) until the window that refused it ends."""

    allowed: bool
    retry_after: int = 0


class CounterStore(Protocol):
    def check(self, key: str, limit: int, window_seconds: int) -> Verdict:
        """Count one request for ``key`` and say whether it is within ``limit`` per window."""

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """``check(...).allowed``."""

    def take(self, key: str, want: int, limit: int) -> int:
        """Grant up to ``want`` of the ``limit`` permits of window ``key`` (the caller names
        the window in the key); 0 when they are spent."""

    def hold(self, key: str, token: str, ttl_seconds: float) -> bool:
        """Keep ``key`` for ``token`` for ``ttl_seconds``; False while another token's hold
        is live. Lets exactly one watchdog chain run per edition however many start."""

    def release(self, key: str, token: str) -> None:
        """Give ``key`` up if ``token`` holds it (else nothing)."""

    def add_failures(self, key: str, failures: int, successes: int) -> int:
        """Update a failure streak (any success restarts it); the streak after this."""

    def reset(self, key: str) -> None:
        """Forget ``key``."""


def _verdict(count: int, limit: int, seconds_left: float) -> Verdict:
    if count <= limit:
        return Verdict(True)
    return Verdict(False, max(1, math.ceil(seconds_left)))


class MemoryCounters:
    """Counts in this process (thread-safe). A request window starts at its first request;
    ``clock`` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, started)
        self._permits: dict[str, int] = {}
        self._holds: dict[str, tuple[str, float]] = {}  # key -> (token, until)
        self._streaks: dict[str, int] = {}

    def check(self, key: str, limit: int, window_seconds: int) -> Verdict:
        now = self._clock()
        with self._lock:
            count, started = self._windows.get(key, (0, now))
            if now - started >= window_seconds:
                count, started = 0, now
            count += 1
            self._windows[key] = (count, started)
            if len(self._windows) > 100_000:  # forget finished windows so memory stays bounded
                self._windows = {k: v for k, v in self._windows.items() if now - v[1] < window_seconds}
        return _verdict(count, limit, started + window_seconds - now)

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        return self.check(key, limit, window_seconds).allowed

    def take(self, key: str, want: int, limit: int) -> int:
        with self._lock:
            used = self._permits.get(key, 0)
            grant = max(0, min(want, limit - used))
            self._permits[key] = used + grant
            if len(self._permits) > 10_000:  # windows are "<name>:<second>": keep this second's
                window = key.rsplit(":", 1)[-1]
                self._permits = {k: v for k, v in self._permits.items() if k.rsplit(":", 1)[-1] == window}
            return grant

    def hold(self, key: str, token: str, ttl_seconds: float) -> bool:
        now = self._clock()
        with self._lock:
            held = self._holds.get(key)
            if held and held[0] != token and held[1] > now:
                return False
            self._holds[key] = (token, now + max(0.001, ttl_seconds))
            return True

    def release(self, key: str, token: str) -> None:
        with self._lock:
            if (self._holds.get(key) or ("",))[0] == token:
                del self._holds[key]

    def add_failures(self, key: str, failures: int, successes: int) -> int:
        with self._lock:
            self._streaks[key] = failures if successes else self._streaks.get(key, 0) + failures
            return self._streaks[key]

    def reset(self, key: str) -> None:
        with self._lock:
            for table in (self._windows, self._permits, self._holds, self._streaks):
                table.pop(key, None)


# Atomically grant up to ARGV[1] permits from KEYS[1]'s window of ARGV[2] permits.
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('PEXPIRE', KEYS[1], 2000)
return grant
"""

# Hold KEYS[1] for token ARGV[1] (ARGV[2] ms) unless another live token holds it.
_HOLD = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_REDIS_TROUBLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class RedisCounters:
    """Counts in Redis, shared by every process that uses the same server and ``prefix``
    (put in front of every key). Request windows are aligned to the epoch (``clock`` is
    wall-clock seconds), so every process agrees on when one ends.

    A request check fails at once when Redis is down (the page errors rather than hangs);
    the delivery operations wait and retry, since sending without the shared limits could
    breach them and a send can wait a few seconds.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._redis = client
        self._prefix = prefix
        self._clock = clock
        self._sleep = sleep
        self._take = client.register_script(_TAKE)
        self._hold = client.register_script(_HOLD)

    @classmethod
    def from_url(cls, url: str, prefix: str = "", **kwargs) -> RedisCounters:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), prefix, **kwargs)

    def _retrying(self, fn: Callable[[], T]) -> T:
        delay = 0.2
        while True:
            try:
                return fn()
            except _REDIS_TROUBLE as exc:  # a restart, a failover
                log.warning("Redis unavailable for shared counters (%s); retrying in %.1fs", exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, 5.0)

    def check(self, key: str, limit: int, window_seconds: int) -> Verdict:
        now = self._clock()
        window = int(now // window_seconds)
        name = f"{self._prefix}{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds + 1)
        count, _ = pipe.execute()
        return _verdict(int(count), limit, (window + 1) * window_seconds - now)

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        return self.check(key, limit, window_seconds).allowed

    def take(self, key: str, want: int, limit: int) -> int:
        name = self._prefix + key
        return int(self._retrying(lambda: self._take(keys=[name], args=[want, limit])))

    def hold(self, key: str, token: str, ttl_seconds: float) -> bool:
        name, ms = self._prefix + key, max(1, int(ttl_seconds * 1000))
        return bool(self._retrying(lambda: self._hold(keys=[name], args=[token, ms])))

    def release(self, key: str, token: str) -> None:
        name = self._prefix + key

        def run() -> None:
            if (self._redis.get(name) or b"").decode() == token:
                self._redis.delete(name)

        self._retrying(run)

    def add_failures(self, key: str, failures: int, successes: int) -> int:
        name = self._prefix + key

        def run() -> int:
            pipe = self._redis.pipeline()
            if successes:
                pipe.set(name, failures, ex=STREAK_TTL_SECONDS)
            else:
                pipe.incrby(name, failures)
                pipe.expire(name, STREAK_TTL_SECONDS)
            return int(pipe.execute()[0])

        return self._retrying(run)

    def reset(self, key: str) -> None:
        self._retrying(lambda: self._redis.delete(self._prefix + key))


def counters_from_url(redis_url: str | None, prefix: str = "") -> CounterStore:
    """A new store: Redis at ``redis_url``, else this process's memory."""
    return RedisCounters.from_url(redis_url, prefix) if redis_url else MemoryCounters()


_shared: dict[tuple[str | None, str], CounterStore] = {}
_shared_lock = threading.Lock()


def counters_for(redis_url: str | None, prefix: str = "") -> CounterStore:
    """The process's one store for ``redis_url`` and ``prefix``: in-memory counts must be
    shared by every thread of the process to mean anything, and Redis connection pools
    belong to one process."""
    with _shared_lock:
        if (redis_url, prefix) not in _shared:
            _shared[(redis_url, prefix)] = counters_from_url(redis_url, prefix)
        return _shared[(redis_url, prefix)]
