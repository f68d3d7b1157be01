"""Metrics read when Prometheus scrapes: from the database, the lock and the queue.

Counts that live in the database are read from it, not counted in processes: each web
process then answers the same, correct numbers across every worker and machine, and a
restart loses nothing. The queries use indexes (``deliveries (edition_id, status)``) and
touch only the latest :data:`RECENT_EDITIONS` editions, so a scrape stays cheap and the
``edition`` label set stays bounded.

Each source is read on its own; one that fails (database down, Redis unreachable) is
left out of that scrape and reported as ``mailer_metrics_source_up{source} 0`` with a log
line, and the others are still served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from mailer import leadership
from mailer.content.models import Partner
from mailer.db import aware
from mailer.delivery.models import BOUNCED, CANCELLED, FAILED, PENDING, SENDING, SENT, SKIPPED, UNKNOWN, Delivery
from mailer.delivery.suppression import COMPLAINT, HARD, SOFT, Bounce
from mailer.digest.models import Edition
from mailer.schedule_runs import MISSED, REGISTERED, ScheduleRun

log = logging.getLogger(__name__)

RECENT_EDITIONS = 12  # a year of monthly editions
DELIVERY_STATUSES = (PENDING, SENDING, SENT, FAILED, UNKNOWN, BOUNCED, SKIPPED, CANCELLED)
BOUNCE_KINDS = (HARD, SOFT, COMPLAINT)
QUEUE_STATES = ("waiting", "delayed", "dead")


class ServiceCollector(Collector):
    """Everything read at scrape time, over one process's runtime (settings and database)."""

    def __init__(self, runtime, broker: Callable[[], object] | None = None):
        self.rt = runtime
        self.broker = broker

    def collect(self) -> Iterator:
        up = GaugeMetricFamily(
            "mailer_metrics_source_up",
            "1 if this scrape could read the source, 0 if it failed (see the log).",
            labels=["source"],
        )
        for source, read in (("database", self._database), ("leadership", self._leadership), ("queue", self._queue)):
            try:
                families = list(read())
            except Exception as err:  # noqa: BLE001 - one source down must not hide the rest
                log.warning("metrics: cannot read the %s: %s", source, err.__class__.__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    # -- the database --------------------------------------------------------------------

    def _database(self) -> Iterator:
        with self.rt.db.transaction() as s:
            yield from _deliveries(s)
            yield from _bounces(s)
            yield from _schedule(s)
            yield from _feeds(s)

    # -- the scheduler's lock ------------------------------------------------------------

    def _leadership(self) -> Iterator:
        g = GaugeMetricFamily(
            "mailer_scheduler_leader",
            "1 for the scheduler process that holds the leadership lock; with "
            "PostgreSQL also 0 for each standby scheduler connected.",
            labels=["process"],
        )
        processes = _scheduler_processes(self.rt)
        for process, leads in sorted(processes.items()):
            g.add_metric([process], 1 if leads else 0)
        yield g
        yield GaugeMetricFamily(
            "mailer_scheduler_has_leader",
            "1 if some scheduler process leads (jobs fire), else 0.",
            value=1 if any(processes.values()) else 0,
        )

    # -- the queue -----------------------------------------------------------------------

    def _queue(self) -> Iterator:
        if self.broker is None:
            return
        g = GaugeMetricFamily(
            "mailer_queue_messages",
            "Messages in each Dramatiq queue: waiting for a worker, delayed (a "
            "retry or a set time to come), dead (given up after retries).",
            labels=["queue", "state"],
        )
        for queue, sizes in queue_sizes(self.broker()).items():
            for state in QUEUE_STATES:
                g.add_metric([queue, state], sizes[state])
        yield g


def _deliveries(s) -> Iterator:
    recent = s.execute(select(Edition.id, Edition.period).order_by(Edition.period.desc()).limit(RECENT_EDITIONS)).all()
    periods = {eid: period for eid, period in recent}
    counts = {(eid, status): 0 for eid in periods for status in DELIVERY_STATUSES}
    deferred = dict.fromkeys(periods, 0)
    if periods:
        for eid, status, n in s.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(periods))
            .group_by(Delivery.edition_id, Delivery.status)
        ):
            if status in DELIVERY_STATUSES:
                counts[(eid, status)] = n
        for eid, n in s.execute(
            select(Delivery.edition_id, func.count())
            .where(Delivery.edition_id.in_(periods), Delivery.status == PENDING, Delivery.attempts > 0)
            .group_by(Delivery.edition_id)
        ):
            deferred[eid] = n
    g = GaugeMetricFamily(
        "mailer_deliveries",
        f"Digest deliveries of each of the latest {RECENT_EDITIONS} editions, by status.",
        labels=["edition", "status"],
    )
    for (eid, status), n in sorted(counts.items()):
        g.add_metric([periods[eid], status], n)
    yield g
    d = GaugeMetricFamily(
        "mailer_deliveries_waiting_retry",
        "Deliveries the relay deferred, now pending until their backoff ends, by edition.",
        labels=["edition"],
    )
    for eid, n in sorted(deferred.items()):
        d.add_metric([periods[eid]], n)
    yield d


def _bounces(s) -> Iterator:
    counts = dict.fromkeys(BOUNCE_KINDS, 0)
    for kind, n in s.execute(select(Bounce.kind, func.count()).group_by(Bounce.kind)):
        if kind in counts:
            counts[kind] = n
    c = CounterMetricFamily(
        "mailer_bounces", "Bounce and complaint reports recorded, by kind (hard, soft, complaint).", labels=["kind"]
    )
    for kind, n in counts.items():
        c.add_metric([kind], n)
    yield c


def _schedule(s) -> Iterator:
    last = GaugeMetricFamily(
        "mailer_schedule_last_run_timestamp_seconds",
        "When each scheduler job last ran (Unix time of its start).",
        labels=["job"],
    )
    for job, when in s.execute(
        select(ScheduleRun.job, func.max(ScheduleRun.started_at))
        .where(ScheduleRun.outcome.not_in((REGISTERED, MISSED)))
        .group_by(ScheduleRun.job)
        .order_by(ScheduleRun.job)
    ):
        last.add_metric([job], aware(when).timestamp())
    yield last
    missed = GaugeMetricFamily(
        "mailer_schedule_missed_runs", "Runs of each job recorded as missed (past the grace window).", labels=["job"]
    )
    for job, n in s.execute(
        select(ScheduleRun.job, func.count())
        .where(ScheduleRun.outcome == MISSED)
        .group_by(ScheduleRun.job)
        .order_by(ScheduleRun.job)
    ):
        missed.add_metric([job], n)
    yield missed


def _feeds(s) -> Iterator:
    with_feed = (Partner.active, Partner.feed_url.is_not(None))
    total = s.scalar(select(func.count()).select_from(Partner).where(*with_feed)) or 0
    failing = (
        s.scalar(select(func.count()).select_from(Partner).where(*with_feed, Partner.feed_error.is_not(None))) or 0
    )
    g = GaugeMetricFamily(
        "mailer_feeds",
        "Active partner feeds, by the state their last poll left (failing: it recorded an error).",
        labels=["state"],
    )
    g.add_metric(["ok"], total - failing)
    g.add_metric(["failing"], failing)
    yield g
    latest = s.scalar(select(func.max(Partner.feed_checked_at)).where(*with_feed))
    if latest is not None:
        yield GaugeMetricFamily(
            "mailer_feed_last_poll_timestamp_seconds",
            "When a partner feed was last polled (Unix time).",
            value=aware(latest).timestamp(),
        )


def _scheduler_processes(rt) -> dict[str, bool]:
    """Scheduler processes known from the lock: ``{"host:pid": leads}``. PostgreSQL shows
    standbys too (their lock connections), Redis and the file lock only the leader."""
    settings = rt.settings
    if settings.database_url.startswith("postgresql"):
        prefix = leadership.APP_NAME + " "
        with rt.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.application_name, EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid"
                    " AND l.locktype = 'advisory' AND l.classid = 0 AND l.objid = :k AND l.objsubid = 1"
                    " AND l.granted) FROM pg_stat_activity a"
                    " WHERE a.datname = current_database() AND a.application_name LIKE :p"
                ),
                {"k": leadership.PG_LOCK_KEY, "p": prefix + "%"},
            ).all()
        return {name.removeprefix(prefix): bool(leads) for name, leads in rows}
    lock = leadership.leadership_for(settings, me="metrics")
    try:
        holder = lock.holder()
    finally:
        getattr(lock, "close", lambda: None)()
    return {holder: True} if holder else {}


def queue_sizes(broker) -> dict[str, dict[str, int]]:
    """``{queue: {"waiting": n, "delayed": n, "dead": n}}`` for our queues and any other
    declared on ``broker``: Dramatiq's Redis broker (read with a few cheap Redis commands
    in one round trip) or its in-process broker."""

    from mailer.queue import QUEUES  # the caller's broker came from there: already imported

    declared = broker.get_declared_queues()
    names = sorted(q for q in {*QUEUES, *declared} if not q.endswith((".DQ", ".XQ")))
    if isinstance(broker, StubBroker):
        names = [q for q in names if q in broker.queues]
        return {
            q: {
                "waiting": broker.queues[q].qsize(),
                "delayed": broker.queues[dq_name(q)].qsize() if dq_name(q) in broker.queues else 0,
                "dead": len(broker.dead_letters_by_queue.get(q, ())),
            }
            for q in names
        }
    ns, pipe = broker.namespace, broker.client.pipeline(transaction=False)
    for q in names:
        pipe.llen(f"{ns}:{q}")  # ids waiting to be fetched
        # Delayed messages: every one not yet acknowledged, held by a worker until due or not.
        pipe.hlen(f"{ns}:{dq_name(q)}.msgs")
        pipe.zcard(f"{ns}:{xq_name(q)}")
    got = pipe.execute()
    return {q: dict(zip(QUEUE_STATES, got[i * 3 : i * 3 + 3], strict=True)) for i, q in enumerate(names)}
