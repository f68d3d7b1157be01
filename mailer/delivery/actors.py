"""Dramatiq actors: thin shells that open a transaction, call the domain, and enqueue.

Messages carry ids only. Every actor is safe to run twice: the ledger, not the queue,
decides whether an email goes out.

Two queues: ``transactional`` (confirmations, manage links: one person waiting) and
``digest`` (editions in batches). Transactional actors have the higher priority, so a
worker that has digest batches prefetched still takes a confirmation first; production
may also run a worker with ``--queues transactional`` alone.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timezone

import dramatiq
from sqlalchemy import select

import mailer.broker  # noqa: F401  (the broker must be set before actors are declared)
from mailer import runtime
from mailer.broker import embedded
from mailer.counters import counters_for
from mailer.db import utcnow
from mailer.delivery import control, fanout
from mailer.delivery.sending import deliver_batch, finish_if_done
from mailer.delivery.transactional import compose_transactional
from mailer.digest.compose import load_plan
from mailer.digest.editions import build_edition, find_edition
from mailer.digest.lifecycle import due
from mailer.digest.models import CANCELLED, DRAFT, SCHEDULED, SENDING, Edition
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import PermanentFailure
from subscribers.models import ERASED, Subscriber

log = logging.getLogger(__name__)
DIGEST_PRIORITY = 10  # lower runs first; transactional keeps the default 0


@dramatiq.actor(queue_name="transactional", max_retries=8, min_backoff=2_000, max_backoff=600_000,
                throws=(PermanentFailure,))
def send_transactional(kind: str, subscriber_id: int) -> None:
    """Send a confirmation ("confirm"), "already subscribed" ("manage") or requested
    manage-link ("link") email."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == ERASED:
            return  # erased or purged before the email went out
        envelope = compose_transactional(kind, rt.settings, sub)
    outgoing = Outgoing(rt.settings, rt.transport)
    try:
        outgoing.to_subscriber(envelope, subscriber_id)
    finally:
        outgoing.close()


@dramatiq.actor(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY,
                time_limit=10 * 60_000)
def send_deliveries(delivery_ids: list[int]) -> None:
    """Send a batch of digest deliveries (ids of ``Delivery`` rows).

    Transient failures are retried by a new message, delayed by the deliveries' own
    backoff (recorded in the ledger as ``next_attempt_at``), not by Dramatiq's retries.
    """
    rt = runtime.current()
    result = deliver_batch(rt.db, rt.transport, rt.settings, delivery_ids)
    if result.retry and not result.paused:
        send_deliveries.send_with_options(args=(result.retry,),
                                          delay=int(result.retry_delay * 1000) + 50)


def enqueue_batches(ids: list[int]) -> int:
    size = runtime.current().settings.delivery.batch_size
    for batch in fanout.batches(ids, size):
        send_deliveries.send(batch)
    return len(ids)


def enqueue_again(ids: list[int], edition_id: int) -> None:
    """Enqueue deliveries of a sending edition again (after resume or resend-unknown) and
    keep its watchdog going."""
    enqueue_batches(ids)
    _watch_later(edition_id)


def _watch_later(edition_id: int, token: str | None = None) -> None:
    """Schedule the edition's watchdog. A new ``token`` starts a chain that only runs on if
    no other chain is alive, so repeated starts and sweeps never multiply watchdogs."""
    if embedded():
        # One process: no worker can die alone and the queue dies with the process;
        # start-up (requeue_pending) is the recovery there.
        return
    delay = int(runtime.current().settings.delivery.watch_seconds * 1000)
    watch_edition.send_with_options(args=(edition_id, token or uuid.uuid4().hex), delay=delay)


@dramatiq.actor(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def start_edition(edition_id: int) -> None:
    """Fan an edition out into deliveries and enqueue the pending ones in batches."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        edition = s.get(Edition, edition_id)
        fanout.start_edition(s, edition, load_plan(s, edition))
        ids = control.pending_ids(s, edition_id, due_only=True)
        done = finish_if_done(s, edition_id)
    if ids and rt.db.engine.dialect.name == "postgresql":
        # Thousands of new rows: fresh statistics keep the planner on the primary key.
        with rt.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE deliveries")
    enqueue_batches(ids)
    if not done:
        _watch_later(edition_id)


@dramatiq.actor(queue_name="digest", max_retries=20, priority=DIGEST_PRIORITY)
def watch_edition(edition_id: int, token: str = "") -> None:
    """The edition's watchdog, every ``SEND_WATCH_SECONDS`` while it is sending: marks
    deliveries of dead workers ``unknown``, enqueues again pending deliveries whose queue
    messages were lost (nothing moved for a whole lease), and closes the edition when done."""
    rt = runtime.current()
    cfg = rt.settings.delivery
    counters, key = counters_for(rt.settings.redis_url), f"mailer:watch:{edition_id}"
    if not counters.hold(key, token, cfg.watch_seconds * 3 + 5):
        return  # another watchdog chain is alive for this edition
    with rt.db.transaction() as s:
        edition = s.get(Edition, edition_id)
        if edition is None or edition.status != SENDING:
            counters.release(key, token)
            return  # paused (resume starts a new watch), cancelled or sent
        reaped = control.reap_stale(s, edition_id, cfg.lease_seconds)
        ids = control.pending_ids(s, edition_id, due_only=True) \
            if control.stalled(s, edition_id, cfg.lease_seconds) else []
        done = finish_if_done(s, edition_id)
    if reaped:
        log.warning("edition %s: %d deliveries left sending by a dead worker marked unknown",
                    edition_id, reaped)
    if ids:
        log.warning("edition %s stalled; enqueueing %d pending deliveries again", edition_id, len(ids))
        enqueue_batches(ids)
    if done:
        counters.release(key, token)
    else:
        _watch_later(edition_id, token)


@dramatiq.actor(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def sweep() -> None:
    """Start a watchdog for every sending edition that has none (the scheduler sends this
    every few minutes, so a watchdog lost with a non-persistent Redis comes back)."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        editions = list(s.scalars(select_sending()))
    for eid in editions:
        _watch_later(eid)


@dramatiq.actor(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def run_period(period: str) -> None:
    """The monthly job: build ``period``'s edition if it is still a draft, then send it."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        edition = find_edition(s, period)
        if edition is not None and edition.status in (SCHEDULED, CANCELLED):
            return  # the editor set a time (send_due_editions sends it) or stopped it
        if edition is None or edition.status == DRAFT:
            edition = build_edition(s, period)
        edition_id = edition.id
    start_edition.send(edition_id)


@dramatiq.actor(queue_name="digest", max_retries=3)
def send_due_editions() -> None:
    """Start every scheduled edition whose time has come (the scheduler runs this each minute)."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        ids = [e.id for e in due(s)]
    for edition_id in ids:
        start_edition.send(edition_id)


def requeue_pending() -> int:
    """Enqueue again the pending deliveries of every edition that is sending, and watch them.
    Deliveries waiting out a retry backoff are enqueued for when their wait ends."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        editions = list(s.scalars(select_sending()))
        due = [i for eid in editions for i in control.pending_ids(s, eid, due_only=True)]
        waiting = [(i, at) for eid in editions for i, at in control.waiting(s, eid)]
    if due or waiting:
        log.info("re-enqueueing %d pending deliveries (%d waiting to retry)",
                 len(due) + len(waiting), len(waiting))
    for eid in editions:
        _watch_later(eid)
    if waiting:
        latest = max(at for _, at in waiting)
        if latest.tzinfo is None:
            latest = latest.replace(tzinfo=timezone.utc)
        delay_ms = max(0, int((latest - utcnow()).total_seconds() * 1000)) + 50
        for batch in fanout.batches([i for i, _ in waiting], rt.settings.delivery.batch_size):
            send_deliveries.send_with_options(args=(batch,), delay=delay_ms)
    return enqueue_batches(due) + len(waiting)


def select_sending():
    return select(Edition.id).where(Edition.status == SENDING)
