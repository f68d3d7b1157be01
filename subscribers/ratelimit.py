"""Fixed-window rate limits for requests that send email to a typed-in address.

With ``REDIS_URL`` the counters live in Redis, shared by every web process; without it
they live in this process (enough for the embedded, single-process setup).

Every refusal says when the window ends, so the answer can carry ``Retry-After``
(:func:`retry_after_header`); any web route that limits clients should use it.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Verdict:
    """One counted request: ``allowed`` within the limit, else ``retry_after`` seconds
    (at least 1) until the window that refused it ends."""

    allowed: bool
    retry_after: int = 0


class Limiter(Protocol):
    def check(self, key: str, limit: int, window_seconds: int) -> Verdict:
        """Count one request for ``key`` and say whether it is within ``limit`` per window."""

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """``check(...).allowed``."""


def _verdict(count: int, limit: int, seconds_left: float) -> Verdict:
    if count <= limit:
        return Verdict(True)
    return Verdict(False, max(1, math.ceil(seconds_left)))


def retry_after_header(verdict: Verdict) -> dict[str, str]:
    """The ``Retry-After`` header (RFC 9110, delay in seconds) for a refused request."""
    return {"Retry-After": str(max(1, verdict.retry_after))}


class MemoryLimiter:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, limit: int, window_seconds: int) -> Verdict:
        now = self._clock()
        with self._lock:
            count, started = self._counts.get(key, (0, now))
            if now - started >= window_seconds:
                count, started = 0, now
            count += 1
            self._counts[key] = (count, started)
            if len(self._counts) > 100_000:  # forget finished windows so memory stays bounded
                self._counts = {k: v for k, v in self._counts.items() if now - v[1] < window_seconds}
        return _verdict(count, limit, started + window_seconds - now)

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        return self.check(key, limit, window_seconds).allowed


class RedisLimiter:
    """Windows aligned to the epoch, so every process agrees on when one ends."""

    def __init__(self, client, prefix: str = "ertg:rl:", clock=time.time):
        self._redis = client
        self._prefix = prefix
        self._clock = clock

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


def make_limiter(redis_url: str | None) -> Limiter:
    if redis_url:
        import redis

        return RedisLimiter(redis.Redis.from_url(redis_url))
    return MemoryLimiter()
