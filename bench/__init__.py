"""Benchmarks (not tests): the figures quoted in issues and reports come from here."""

from __future__ import annotations

import os
import time
from pathlib import Path


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


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User + system CPU a process has used so far; with ``reaped``, also that of its
    children that have exited and been waited for (a server's finished backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def processes_cpu_seconds(command: str) -> float:
    """User + system CPU of every process named ``command`` on this machine so far, and
    of the children they have waited for (a server's finished backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    total += cpu_seconds(int(entry.name), reaped=True)
            except OSError:
                pass  # gone meanwhile
    return total


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process so far (backends, WAL writer, checkpointer,
    autovacuum, and those that have exited: a pool's overflow connections close when
    handed back): the server side of a run, when nothing else uses the server meanwhile."""
    return processes_cpu_seconds("postgres")
