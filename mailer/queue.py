"""The queue: the Dramatiq broker one process uses and, in embedded mode, its worker threads.

:meth:`Queue.from_settings` builds it once per process (:func:`mailer.boot.boot` does).
With ``REDIS_URL`` messages go through Redis and ``dramatiq`` worker processes (on any
number of machines) run them. Without it (embedded mode) messages stay in this process and
:meth:`Queue.ensure_worker` runs worker threads here: every process that enqueues work also
works it off, so no separate worker is needed on a laptop.

Jobs are plain functions marked with :func:`job`; :meth:`Queue.declare` makes them actors of
this queue's broker. Importing a job module therefore touches no broker, and no import order
can declare an actor on the wrong one.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name

from mailer.settings import Settings

log = logging.getLogger(__name__)
QUEUES = ("transactional", "digest")


def job(**options) -> Callable:
    """Mark a function as a queue job with Dramatiq actor ``options`` (``queue_name``,
    ``max_retries``, ...). The function stays a plain function: calling it runs the job here."""

    def mark(fn: Callable) -> Callable:
        fn.job_options = options
        return fn

    return mark


def make_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis_url:
        return RedisBroker(url=settings.redis_url)
    broker = StubBroker()
    # An in-process broker never sees the worker CLI's boot signal; without it the
    # TimeLimit middleware does not enforce time limits.
    broker.emit_after("process_boot")
    return broker


class Queue:
    """A broker, the jobs declared on it, and (embedded mode only) this process's workers.

    ``on_start`` runs each time this process's worker threads start (boot sets it to
    re-enqueue the deliveries an earlier process left pending). ``keeper``, if set, runs in
    a thread of its own beside them until they stop (boot sets it to the delivery keeper:
    heartbeats of this process's claims and sweeps for dead ones, as in a worker process).
    """

    def __init__(self, broker: dramatiq.Broker, *, threads: int, redis_url: str | None = None):
        self.broker = broker
        self.threads = threads
        self.redis_url = redis_url
        self.on_start: Callable[[], object] | None = None
        self.keeper: Callable[[threading.Event], object] | None = None
        self._keeper_stop: threading.Event | None = None
        self._worker: dramatiq.Worker | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Queue:
        return cls(make_broker(settings), threads=settings.worker_threads, redis_url=settings.redis_url)

    def fits(self, settings: Settings) -> bool:
        """True if ``settings`` would build this same queue (so a new runtime may keep it)."""
        return self.redis_url == settings.redis_url and self.threads == settings.worker_threads

    @property
    def embedded(self) -> bool:
        return isinstance(self.broker, StubBroker)

    def declare(self, jobs) -> None:
        """Make every function of ``jobs`` (marked with :func:`job`) an actor of this broker."""
        for fn in jobs:
            if fn.__name__ not in self.broker.actors:
                dramatiq.actor(fn, broker=self.broker, actor_name=fn.__name__, **fn.job_options)

    def send(self, fn: Callable, *args, delay_ms: int | None = None) -> None:
        """Enqueue job ``fn`` with ``args``, after ``delay_ms`` if given. In embedded mode
        the first send starts this process's worker threads, which work it off here."""
        self.ensure_worker()
        self.broker.get_actor(fn.__name__).send_with_options(args=args, delay=delay_ms)

    def holds_none_of(self, queue_name: str, jobs) -> bool | None:
        """Whether the broker holds no message of ``queue_name`` for any of ``jobs``: none
        waiting, none delayed, none fetched by a worker and not yet acknowledged (a dead
        worker's stay until Dramatiq gives them back). None in embedded mode, which
        cannot tell (its queue dies with the process that holds it)."""
        if self.embedded:
            return None
        names = {fn.__name__ for fn in jobs}
        # Dramatiq's Redis broker keeps each message of a queue, and of its delay queue,
        # in a table ("<namespace>:<queue>.msgs") from its enqueue to its ack; the first
        # match ends the scan, so a busy queue costs a read or two.
        client, space = self.broker.client, self.broker.namespace
        for table in (f"{space}:{queue_name}.msgs", f"{space}:{dq_name(queue_name)}.msgs"):
            for _, data in client.hscan_iter(table, count=100):
                if dramatiq.Message.decode(data).actor_name in names:
                    return False
        return True

    def ensure_worker(self, threads: int | None = None) -> bool:
        """Start worker threads in this process if the broker is in-process. True if started now.

        On start, ``on_start`` runs: deliveries left pending by an earlier process are
        enqueued again (the in-process queue died with it; the ledger did not).
        """
        if not self.embedded:
            return False
        with self._lock:
            if self._worker is not None:
                return False
            self._worker = dramatiq.Worker(self.broker, worker_threads=threads or self.threads, worker_timeout=100)
            self._worker.start()
            if self.keeper is not None:
                self._keeper_stop = threading.Event()
                threading.Thread(
                    target=self.keeper, args=(self._keeper_stop,), name="delivery-keeper", daemon=True
                ).start()
            atexit.register(self.drain)
        if self.on_start is not None:
            self.on_start()
        return True

    def drain(self, timeout_ms: int | None = None) -> None:
        """Wait until the in-process queues are empty (messages waiting to retry included)."""
        if self._worker is None:
            return
        for name in list(self.broker.queues):
            if not name.endswith((".DQ", ".XQ")):
                self.broker.join(name, timeout=timeout_ms, fail_fast=False)
        self._worker.join()

    def stop(self) -> None:
        """Stop this process's worker threads, if any."""
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
            if self._keeper_stop is not None:
                self._keeper_stop.set()
                self._keeper_stop = None
