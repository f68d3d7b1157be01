"""Dramatiq actors: thin shells that open a transaction, call the domain, and enqueue.

Messages carry ids only. Every actor is safe to run twice: the ledger, not the queue,
decides whether an email goes out.
"""
from __future__ import annotations

import logging

import dramatiq

import mailer.broker  # noqa: F401  (the broker must be set before actors are declared)
from mailer import runtime
from mailer.delivery import fanout
from mailer.delivery.sending import deliver_batch, finish_if_done
from mailer.delivery.transactional import compose_transactional
from mailer.delivery.transport import PermanentFailure
from mailer.digest.compose import load_plan
from mailer.digest.editions import build_edition
from mailer.digest.models import SENDING, Edition
from subscribers.models import Subscriber

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Some deliveries met a transient failure; Dramatiq retries the message with backoff."""


@dramatiq.actor(queue_name="transactional", max_retries=8, min_backoff=2_000, max_backoff=600_000,
                throws=(PermanentFailure,))
def send_transactional(kind: str, subscriber_id: int) -> None:
    """Send a confirmation ("confirm"), "already subscribed" ("manage") or requested
    manage-link ("link") email."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == "erased":
            return  # erased or purged before the email went out
        envelope = compose_transactional(kind, rt.settings, sub)
    try:
        rt.transport.send(envelope.sender, envelope.recipient, envelope.data)
    finally:
        rt.transport.close()


@dramatiq.actor(queue_name="digest", max_retries=12, min_backoff=5_000, max_backoff=900_000,
                time_limit=30 * 60_000)
def send_deliveries(delivery_ids: list[int]) -> None:
    """Send a batch of digest deliveries (ids of ``Delivery`` rows)."""
    rt = runtime.current()
    result = deliver_batch(rt.db, rt.transport, rt.settings, delivery_ids)
    if result.retry:
        raise RetryLater(f"{len(result.retry)} deliveries will be retried")


def enqueue_batches(ids: list[int]) -> int:
    size = runtime.current().settings.batch_size
    for batch in fanout.batches(ids, size):
        send_deliveries.send(batch)
    return len(ids)


@dramatiq.actor(queue_name="digest", max_retries=3)
def start_edition(edition_id: int) -> None:
    """Fan an edition out into deliveries and enqueue the pending ones in batches."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        edition = s.get(Edition, edition_id)
        fanout.start_edition(s, edition, load_plan(s, edition))
        ids = fanout.pending_ids(s, edition_id)
        finish_if_done(s, edition_id)
    enqueue_batches(ids)


@dramatiq.actor(queue_name="digest", max_retries=3)
def run_period(period: str) -> None:
    """The monthly job: build ``period``'s edition if it is still a draft, then send it."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        edition = s.query(Edition).filter_by(period=period).one_or_none()
        if edition is not None and edition.status in ("scheduled", "cancelled"):
            return  # the editor set a time (send_due_editions sends it) or stopped it
        if edition is None or edition.status == "draft":
            edition = build_edition(s, period)
        edition_id = edition.id
    start_edition.send(edition_id)


@dramatiq.actor(queue_name="digest", max_retries=3)
def send_due_editions() -> None:
    """Start every scheduled edition whose time has come (the scheduler runs this each minute)."""
    from mailer.digest.lifecycle import due

    rt = runtime.current()
    with rt.db.transaction() as s:
        ids = [e.id for e in due(s)]
    for edition_id in ids:
        start_edition.send(edition_id)


def requeue_pending() -> int:
    """Enqueue again the pending deliveries of every edition that is sending."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        ids = [i for (eid,) in s.query(Edition.id).filter(Edition.status == SENDING)
               for i in fanout.pending_ids(s, eid)]
    if ids:
        log.info("re-enqueueing %d pending deliveries", len(ids))
    return enqueue_batches(ids)
