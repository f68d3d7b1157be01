"""Send rate limits and the consecutive-failure counter, shared by every worker.

With Redis (``REDIS_URL``) the counters live there, so ten workers on three machines keep
to one overall rate and one rate per recipient domain together. In embedded mode the same
logic runs on in-process counters.

Rates are fixed one-second windows. A worker takes a small block of permits at a time
and spends them locally, so the limit costs one Redis round trip per block, not per
message; permits left over when a window ends are wasted, never carried over, so the
limit is never exceeded.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from mailer.metrics import events

log = logging.getLogger(__name__)

# Atomically grant up to ARGV[1] permits from KEYS[1]'s window of ARGV[2] permits.
# Hold KEYS[1] for token ARGV[1] (ARGV[2] ms) unless another live token holds it.
_HOLD = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('PEXPIRE', KEYS[1], 2000)
return grant
"""


class Counters:
    """Window counters and failure streaks: Redis when ``url`` is given, else in memory."""

    def __init__(self, url: str | None = None):
        self._lock = threading.Lock()
        self._mem: dict[str, int] = {}
        self._redis = None
        if url:
            import redis

            self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            self._take = self._redis.register_script(_TAKE)
            self._hold = self._redis.register_script(_HOLD)

    def _retrying(self, fn: Callable):
        """Redis trouble (a restart, a failover) waits and tries again: sending without
        the shared limits could breach them, and the send can wait a few seconds."""
        delay = 0.2
        while True:
            try:
                return fn()
            except Exception as exc:  # redis.ConnectionError, TimeoutError, BusyLoadingError
                if self._redis is None or not _is_redis_error(exc):
                    raise
                log.warning("Redis unavailable for rate limits (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def take(self, key: str, want: int, limit: int) -> int:
        """Grant up to ``want`` of the ``limit`` permits in window ``key``."""
        if self._redis is not None:
            return int(self._retrying(lambda: self._take(keys=[key], args=[want, limit])))
        with self._lock:
            used = self._mem.get(key, 0)
            grant = max(0, min(want, limit - used))
            self._mem[key] = used + grant
            if len(self._mem) > 10_000:  # drop windows other than this one
                window = key.rsplit(":", 1)[-1]
                self._mem = {k: v for k, v in self._mem.items()
                             if not k.startswith("mailer:rate") or k.rsplit(":", 1)[-1] == window}
            return grant

    def hold(self, key: str, token: str, ttl_seconds: float) -> bool:
        """Keep ``key`` for ``token`` for ``ttl_seconds``; False if another holder's is live.
        Lets exactly one watchdog chain run per edition however many are started."""
        ms = max(1, int(ttl_seconds * 1000))
        if self._redis is not None:
            return bool(self._retrying(lambda: self._hold(keys=[key], args=[token, ms])))
        with self._lock:
            now = time.monotonic()
            held = self._mem.get(key)
            if held and held[0] != token and held[1] > now:
                return False
            self._mem[key] = (token, now + ms / 1000)
            return True

    def release(self, key: str, token: str) -> None:
        if self._redis is not None:
            def run():
                if (self._redis.get(key) or b"").decode() == token:
                    self._redis.delete(key)
            self._retrying(run)
        else:
            with self._lock:
                if (self._mem.get(key) or ("",))[0] == token:
                    del self._mem[key]

    def add_failures(self, key: str, failures: int, successes: int) -> int:
        """Update a failure streak: any success resets it. Returns the streak after this."""
        if self._redis is not None:
            def run():
                pipe = self._redis.pipeline()
                if successes:
                    pipe.set(key, failures, ex=86_400)
                else:
                    pipe.incrby(key, failures)
                    pipe.expire(key, 86_400)
                return int(pipe.execute()[0])
            return self._retrying(run)
        with self._lock:
            self._mem[key] = failures if successes else self._mem.get(key, 0) + failures
            return self._mem[key]

    def reset(self, key: str) -> None:
        if self._redis is not None:
            self._retrying(lambda: self._redis.delete(key))
        else:
            with self._lock:
                self._mem.pop(key, None)


def _is_redis_error(exc: Exception) -> bool:
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError))


class RateLimiter:
    """Blocks until a message to ``domain`` may leave under the overall and domain rates."""

    def __init__(self, counters: Counters, rate: float | None, rate_for: Callable[[str], float | None],
                 prefix: str = "mailer:rate"):
        self.counters = counters
        self.rate = rate
        self.rate_for = rate_for
        self.prefix = prefix
        self._local = threading.local()

    def _permit(self, name: str, limit: float) -> None:
        allowance = self._local.__dict__.setdefault("allowance", {})
        per_window = max(1, int(limit))
        while True:
            window = int(time.time())
            have_window, left = allowance.get(name, (None, 0))
            if have_window == window and left > 0:
                allowance[name] = (window, left - 1)
                return
            block = max(1, min(10, per_window // 20))  # small blocks keep workers fair
            got = self.counters.take(f"{self.prefix}:{name}:{window}", block, per_window)
            if got:
                allowance[name] = (window, got - 1)
                return
            wait = max(0.001, window + 1 - time.time())
            events.rate_limit_wait(wait)
            time.sleep(wait)

    def acquire(self, domain: str) -> None:
        domain_rate = self.rate_for(domain)
        if domain_rate:
            self._permit(f"domain:{domain}", domain_rate)
        if self.rate:
            self._permit("all", self.rate)


_counters: dict[str | None, Counters] = {}
_counters_lock = threading.Lock()


def counters_for(redis_url: str | None) -> Counters:
    """One :class:`Counters` per process and Redis URL (connection pools are per process)."""
    with _counters_lock:
        if redis_url not in _counters:
            _counters[redis_url] = Counters(redis_url)
        return _counters[redis_url]
