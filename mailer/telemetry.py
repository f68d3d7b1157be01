"""Counters of things that happen inside one process, and the request latency histogram.

Call sites use the small functions here (:func:`email_sent`, :func:`deferred`...), never
prometheus-client directly, so the rest of the code does not care whether metrics are
kept in memory or in multiprocess files. The metrics are made on first use, not at import:
prometheus-client picks its storage (memory, or files under ``PROMETHEUS_MULTIPROC_DIR``)
when the first metric is made, and a Dramatiq worker process only sets that directory
when it boots, after our modules are imported.

Labels are few and bounded: no ids, addresses, partner names or raw paths.
"""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
FEED_OUTCOMES = ("ok", "not_modified", "error")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_lock = threading.Lock()
_metrics: SimpleNamespace | None = None


def multiprocess() -> bool:
    """True when this process writes its metrics to ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _make() -> SimpleNamespace:
    # made on first use: prometheus-client picks memory or multiprocess files when it is imported
    from prometheus_client import Counter, Histogram, values

    if multiprocess():
        # The directory may have been set after prometheus-client was first imported (a
        # Dramatiq worker sets it at boot): choose the storage again before making ours.
        values.ValueClass = values.get_value_class()
    return SimpleNamespace(
        emails_sent=Counter(
            "mailer_emails_sent",
            "Messages handed to the relay (every kind: "
            "digests, confirmations, notices); rate() of it is the send rate.",
        ),
        deferred=Counter(
            "mailer_deliveries_deferred",
            "Digest deliveries the relay deferred "
            "(a temporary failure): put back with a backoff, or failed once out of attempts.",
        ),
        rate_waits=Counter("mailer_rate_limit_waits", "Times a sender waited for the send-rate limit."),
        rate_wait_seconds=Counter(
            "mailer_rate_limit_wait_seconds", "Seconds senders spent waiting for the send-rate limit."
        ),
        feed_polls=Counter("mailer_feed_polls", "Partner feed polls by the scheduled job, by outcome.", ["outcome"]),
        requests=Histogram(
            "mailer_http_request_duration_seconds",
            "Web request latency by route template (never the raw path), method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
        ),
    )


def metrics() -> SimpleNamespace:
    """This process's event metrics (made on first use)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _make()
    return _metrics


def email_sent(count: int = 1) -> None:
    metrics().emails_sent.inc(count)


def deferred() -> None:
    metrics().deferred.inc()


def rate_limit_wait(seconds: float) -> None:
    m = metrics()
    m.rate_waits.inc()
    m.rate_wait_seconds.inc(max(0.0, seconds))


def feed_polls(results) -> None:
    """Count a poll's results (:class:`mailer.content.feeds.PollResult`), one per feed."""
    counter = metrics().feed_polls
    for r in results:
        counter.labels("error" if r.error else "not_modified" if r.not_modified else "ok").inc()


def request(route: str, method: str, status: int, seconds: float) -> None:
    """Observe one web request. ``route`` is the URL rule; an unknown method (clients may
    send any word) is counted as ``other`` so it cannot grow the label set."""
    metrics().requests.labels(route, method if method in HTTP_METHODS else "other", str(status)).observe(seconds)
