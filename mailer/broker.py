"""The Dramatiq broker, set before any actor is declared.

With ``REDIS_URL`` set, actors go through Redis and ``dramatiq`` worker processes (on any
number of machines) run them. Without it (embedded mode) messages stay in this process
and :func:`ensure_embedded_worker` runs worker threads here: every process that enqueues
work also works it off, so no separate worker is needed on a laptop.
"""
from __future__ import annotations

import atexit
import logging
import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker

from mailer.metrics.workers import add_log_context
from mailer.settings import Settings, get_settings

log = logging.getLogger(__name__)
QUEUES = ("transactional", "digest")


def make_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=settings.redis_url)
    broker = StubBroker()
    # An in-process broker never sees the worker CLI's boot signal; without it the
    # TimeLimit middleware does not enforce time limits.
    broker.emit_after("process_boot")
    return broker


broker = make_broker(get_settings())
add_log_context(broker)  # each message starts with no edition/delivery ids in its log lines
dramatiq.set_broker(broker)

_worker: dramatiq.Worker | None = None
_lock = threading.Lock()


def embedded() -> bool:
    return isinstance(broker, StubBroker)


def ensure_embedded_worker(threads: int | None = None) -> bool:
    """Start worker threads in this process if the broker is in-process. True if started now.

    On start, deliveries left pending by an earlier process are enqueued again (the
    in-process queue died with it; the ledger did not).
    """
    global _worker
    if not embedded():
        return False
    with _lock:
        if _worker is not None:
            return False
        from mailer.delivery import actors  # noqa: F401  (declares the queues)
        from subscribers import tasks  # noqa: F401  (housekeeping jobs)

        _worker = dramatiq.Worker(broker, worker_threads=threads or get_settings().worker_threads,
                                  worker_timeout=100)
        _worker.start()
        atexit.register(drain)
    actors.requeue_pending()
    return True


def drain(timeout_ms: int | None = None) -> None:
    """Wait until the in-process queues are empty (messages waiting to retry included)."""
    if _worker is None:
        return
    for queue in list(broker.queues):
        if not queue.endswith((".DQ", ".XQ")):
            broker.join(queue, timeout=timeout_ms, fail_fast=False)
    _worker.join()


def stop_embedded_worker() -> None:
    global _worker
    with _lock:
        if _worker is not None:
            _worker.stop()
            _worker = None
