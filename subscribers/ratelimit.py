"""Fixed-window rate limits for requests that send email to a typed-in address.

With ``REDIS_URL`` the counters live in Redis, shared by every web process; without it
they live in this process (enough for the embedded, single-process setup).
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Limiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one request for ``key``; True if it is within ``limit`` per window."""


class MemoryLimiter:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        now = self._clock()
        with self._lock:
            count, started = self._counts.get(key, (0, now))
            if now - started >= window_seconds:
                count, started = 0, now
            count += 1
            self._counts[key] = (count, started)
            if len(self._counts) > 100_000:  # forget finished windows so memory stays bounded
                self._counts = {k: v for k, v in self._counts.items() if now - v[1] < window_seconds}
            return count <= limit


class RedisLimiter:
    def __init__(self, client, prefix: str = "ertg:rl:"):
        self._redis = client
        self._prefix = prefix

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        window = int(time.time() // window_seconds)
        name = f"{self._prefix}{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds + 1)
        count, _ = pipe.execute()
        return int(count) <= limit


def make_limiter(redis_url: str | None) -> Limiter:
    if redis_url:
        import redis

        return RedisLimiter(redis.Redis.from_url(redis_url))
    return MemoryLimiter()
