"""One scrape: this process's (or this machine's web processes') events and the
service-wide figures read from the database, lock and queue, in Prometheus text format."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from mailer import telemetry as events
from mailer.metrics.collectors import ServiceCollector


class _Everything(Collector):
    """What another registry holds (this process's in-memory metrics), passed through."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def render(runtime) -> tuple[bytes, str]:
    """The scrape body and its content type. In multiprocess mode the event metrics come
    from every process's file in ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn's workers and any
    other process sharing the directory); otherwise from this process's memory."""
    registry = CollectorRegistry(auto_describe=False)
    if events.multiprocess():
        # only in multiprocess mode, where its directory is set
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(registry)
    else:
        registry.register(_Everything(REGISTRY))
    registry.register(ServiceCollector(runtime, lambda: runtime.queue.broker))
    return generate_latest(registry), CONTENT_TYPE_LATEST
