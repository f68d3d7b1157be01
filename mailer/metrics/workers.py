"""Metrics and log context in Dramatiq worker processes.

**Why Dramatiq's Prometheus middleware for the workers**: ``mailer worker`` runs several
``dramatiq`` processes per machine, on as many machines as needed, and none of them
serves HTTP. The middleware (``dramatiq.middleware.prometheus.Prometheus``) already runs
prometheus-client's multiprocess mode across a machine's worker processes and serves the
sum from one extra process on its own port, with Dramatiq's own figures (messages
processed, errors, retries, durations per actor). Our worker events
(:mod:`mailer.telemetry`: messages sent, deferrals, rate-limit waits, feed polls) are
written to the same directory, so one scrape per worker machine has them all. Prometheus
scrapes each worker machine at ``WORKER_METRICS`` (host:port; off when unset, so two
workers on one machine, or a test run, never fight over a port).

:class:`ClearIds` (every broker, embedded too) starts each queue message with no log ids,
since worker threads are reused and the ids live in context variables of the thread.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from mailer import logs

log = logging.getLogger(__name__)


class ClearIds(Middleware):
    """Forget the log ids (:mod:`mailer.logs`) before and after each message."""

    def before_process_message(self, broker, message):
        logs.clear()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        logs.clear()

    after_skip_message = after_process_message


def add_log_context(broker: dramatiq.Broker) -> None:
    broker.add_middleware(ClearIds())


def metrics_dir() -> Path:
    """Where the worker processes of this machine keep their metrics (Dramatiq's setting
    ``dramatiq_prom_db``, else its default under the temporary directory)."""
    return Path(os.environ.get("dramatiq_prom_db") or Path(tempfile.gettempdir()) / "dramatiq-prometheus")


def prepare(settings) -> None:
    """In ``mailer worker``, before the worker processes start: point Dramatiq's middleware
    at ``WORKER_METRICS`` and empty the metrics directory of an earlier run (files of
    processes that are gone would otherwise be summed in for ever)."""
    if settings.worker_metrics is None:
        return
    path = metrics_dir()
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    host, port = settings.worker_metrics
    os.environ.update(
        {
            "dramatiq_prom_db": str(path),
            "dramatiq_prom_host": host,
            "dramatiq_prom_port": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(path),
        }
    )


def serve_metrics(broker: dramatiq.Broker, settings) -> bool:
    """In each worker process (``mailer.worker``): add Dramatiq's Prometheus middleware
    when ``WORKER_METRICS`` is set and the broker is Redis. True if added."""
    if settings.worker_metrics is None or isinstance(broker, StubBroker):
        return False
    host, port = settings.worker_metrics
    # Read by the middleware's module when first imported: set them first (``prepare``
    # did already under ``mailer worker``; this covers ``dramatiq mailer.worker``).
    os.environ.setdefault("dramatiq_prom_db", str(metrics_dir()))
    os.environ.setdefault("dramatiq_prom_host", host)
    os.environ.setdefault("dramatiq_prom_port", str(port))
    # read its settings from the environment set just above, so imported only now
    from dramatiq.middleware.prometheus import Prometheus

    if not any(isinstance(m, Prometheus) for m in broker.middleware):
        broker.add_middleware(Prometheus())
    return True
