"""Benchmarks (not tests): the figures quoted in issues and reports come from here."""

from __future__ import annotations

import time


def reference_ms() -> float:
    """Milliseconds this machine takes, on one core, for a fixed pure-Python loop (best of 3).

    Printed beside a benchmark's figures, at its start and its end: on a shared machine the
    same loop has taken 56 ms and 98 ms a few minutes apart, a swing that the load average
    does not show, so figures from different runs compare only alongside it."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - start)
    return best * 1000
