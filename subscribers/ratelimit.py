"""Fixed-window rate limits for requests that send email or store what a stranger typed.

With ``REDIS_URL`` the counters live in Redis, shared by every web process; without it
they live in this process (enough for the embedded, single-process setup).

``wait`` counts a request and says how long to come back after (0: go ahead), so a 429
can carry ``Retry-After``; ``hit`` is the yes/no form of the same count.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Protocol


class Limiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one request for ``key``; True if it is within ``limit`` per window."""

    def wait(self, key: str, limit: int, window_seconds: int) -> int:
        """Count one request for ``key``: 0 if it is within ``limit`` per window, else
        the whole seconds (at least 1) until the window ends and requests are allowed again."""


class MemoryLimiter:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        return self.wait(key, limit, window_seconds) == 0

    def wait(self, key: str, limit: int, window_seconds: int) -> int:
        now = self._clock()
        with self._lock:
            count, started = self._counts.get(key, (0, now))
            if now - started >= window_seconds:
                count, started = 0, now
            count += 1
            self._counts[key] = (count, started)
            if len(self._counts) > 100_000:  # forget finished windows so memory stays bounded
                self._counts = {k: v for k, v in self._counts.items() if now - v[1] < window_seconds}
            if count <= limit:
                return 0
            return max(1, math.ceil(started + window_seconds - now))


class RedisLimiter:
    def __init__(self, client, prefix: str = "ertg:rl:", clock=time.time):
        self._redis = client
        self._prefix = prefix
        self._clock = clock

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        return self.wait(key, limit, window_seconds) == 0

    def wait(self, key: str, limit: int, window_seconds: int) -> int:
        # Windows are aligned to the epoch, so every process agrees when one ends.
        now = self._clock()
        window = int(now // window_seconds)
        name = f"{self._prefix}{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds + 1)
        count, _ = pipe.execute()
        if int(count) <= limit:
            return 0
        return max(1, math.ceil((window + 1) * window_seconds - now))


def make_limiter(redis_url: str | None) -> Limiter:
    if redis_url:
        import redis

        return RedisLimiter(redis.Redis.from_url(redis_url))
    return MemoryLimiter()
