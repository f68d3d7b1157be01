"""The cyclic garbage collector's settings for a long-running worker process.

A sending worker makes many short-lived containers a message (rows, dicts, a message's
pieces) and keeps many long-lived ones (modules, the app, its engine and pools, the
prepared edition). With CPython's defaults a young collection runs every 700 net
allocations, and the older generations it promotes into are walked again and again.
``bench.send_worker`` (one process, 8 greenlets, 40,000 readers) timed the collector
through ``gc.callbacks``: 13.9-15.1 us of CPU a message with CPython's settings (26-30 us
in a fresh process), 1.6-1.9 us with :func:`settle_collector`. Freezing alone brought it
to about 5 us; the longer young interval does the rest.

Cycles are still found and freed; only less often, and never among the objects the
process had made by the time it was settled, which live as long as it does. The cost is
memory: cycles wait longer for their collection (an edition's render leaves some). Young
collections every 20,000 allocations took a worker's peak RSS in ``bench.send`` from 110
to 118-119 MB; every 5,000, to 112 MB, for under 1.5 us a message more.

Foundation: imports nothing of the domain or the edges.
"""

from __future__ import annotations

import gc

# Net allocations between young collections (CPython's default is 700), and how many
# collections of a generation run before the next one up is collected (CPython's 10).
YOUNG_EVERY = 5_000
OLDER_EVERY = 10


def settle_collector() -> None:
    """Free what is garbage now, exempt every object still alive from later collections
    (``gc.freeze``), and collect the young generation every :data:`YOUNG_EVERY`
    allocations. For a worker process once it has booted; a process that keeps calling
    it freezes whatever it made in between, so call it once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_EVERY, OLDER_EVERY, OLDER_EVERY)
