"""Send rate limits, shared by every worker through the counter store.

With Redis (``REDIS_URL``) the counters live there (:mod:`mailer.counters`), so ten workers
on three machines keep to one overall rate and one rate per recipient domain together. In
embedded mode the same logic runs on in-process counters.

Rates are fixed one-second windows. A worker takes a small block of permits at a time
and spends them locally, so the limit costs one Redis round trip per block, not per
message; permits left over when a window ends are wasted, never carried over, so the
limit is never exceeded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mailer import telemetry as events
from mailer.counters import CounterStore


class RateLimiter:
    """Blocks until a message to ``domain`` may leave under the overall and domain rates.

    ``clock`` (wall-clock seconds: every worker must agree on the window) and ``sleep`` are
    injectable for tests.
    """

    def __init__(
        self,
        counters: CounterStore,
        rate: float | None,
        rate_for: Callable[[str], float | None],
        prefix: str = "mailer:rate",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.counters = counters
        self.rate = rate
        self.rate_for = rate_for
        self.prefix = prefix
        self._clock = clock
        self._sleep = sleep
        self._local = threading.local()

    def _permit(self, name: str, limit: float) -> None:
        allowance = self._local.__dict__.setdefault("allowance", {})
        per_window = max(1, int(limit))
        while True:
            window = int(self._clock())
            have_window, left = allowance.get(name, (None, 0))
            if have_window == window and left > 0:
                allowance[name] = (window, left - 1)
                return
            block = max(1, min(10, per_window // 20))  # small blocks keep workers fair
            got = self.counters.take(f"{self.prefix}:{name}:{window}", block, per_window)
            if got:
                allowance[name] = (window, got - 1)
                return
            wait = max(0.001, window + 1 - self._clock())
            events.rate_limit_wait(wait)
            self._sleep(wait)

    def acquire(self, domain: str) -> None:
        domain_rate = self.rate_for(domain)
        if domain_rate:
            self._permit(f"domain:{domain}", domain_rate)
        if self.rate:
            self._permit("all", self.rate)
