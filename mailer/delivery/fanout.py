"""Fan-out: one ``Delivery`` row per confirmed subscriber of an edition, idempotently.

The rows are made in the database (``INSERT ... SELECT``), one bounded range of
subscriber ids at a time, so the fan-out's memory does not grow with the audience; the
pending ids are then read back as a stream (:func:`pending_batches`) and enqueued batch by
batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, exists, false, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.delivery.models import PENDING, SKIPPED, Delivery
from mailer.digest import status
from mailer.digest.editions import EditionError
from mailer.digest.models import Edition
from mailer.digest.plan import DigestPlan
from subscribers import suppression
from subscribers.models import Subscriber, Suppression, subscriber_partners, subscriber_topics
from subscribers.service import receives_digests

# Subscribers per INSERT ... SELECT: bounds each statement (and the addresses read to check
# the suppression list), not the transaction, which stays one so the edition starts whole.
FANOUT_BATCH = 20_000
_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass(frozen=True)
class FanOut:
    created: int
    skipped: int


def start_edition(session: Session, edition: Edition, plan: DigestPlan, *, batch: int = FANOUT_BATCH) -> FanOut:
    """Move ``edition`` to ``sending`` and add a delivery for each confirmed subscriber
    who has none yet: ``pending`` if the plan has items for them, else ``skipped``.

    Who receives is :func:`subscribers.service.receives_digests` (confirmed, not paused)
    less the suppression list (keyed hashes, so checked here per range of subscribers).
    Calling it again adds nothing for subscribers already in the ledger, so a repeated
    send never mails anyone twice.
    """
    status.check(edition, status.START)
    if not plan.sections:
        raise EditionError(f"The {edition.period} edition has no approved items to send.")
    now = utcnow()
    # A reader has something to read iff they chose a topic of some item or follow the
    # partner of some item (DigestPlan.mask_for is non-zero exactly then).
    topics = sorted({t for e in plan.entries for t in e.topic_ids})
    partners = sorted({e.partner_id for e in plan.entries})
    wanted = or_(
        exists().where(subscriber_topics.c.subscriber_id == Subscriber.id, subscriber_topics.c.topic_id.in_(topics))
        if topics
        else false(),
        exists().where(
            subscriber_partners.c.subscriber_id == Subscriber.id, subscriber_partners.c.partner_id.in_(partners)
        )
        if partners
        else false(),
    )
    check_suppressed = session.scalar(select(Suppression.id).limit(1)) is not None
    # What this call made, from the statements' own row counts: counting the edition's
    # ledger before and after cost two scans of every row (150 ms each at 100,000 readers).
    # Only the skipped ones are counted, through the (edition, status) index.
    skipped_before = _count(session, edition.id, SKIPPED)
    inserted = 0
    low = 0
    while True:
        span = select(Subscriber.id).where(Subscriber.id > low).order_by(Subscriber.id).limit(batch).subquery()
        high = session.scalar(select(func.max(span.c.id)))
        if high is None:
            break
        # Readers already in the ledger are passed over by the INSERT's ON CONFLICT on the
        # (edition, subscriber) key, one index probe each, not by a NOT EXISTS here: that
        # anti-join's plan followed the ledger's statistics, and with an empty ledger just
        # analysed (a first edition) it was a nested loop reading the ledger, as this very
        # statement filled it, once per reader: 3 s of a 20,000-reader range's 3.3 s.
        audience = and_(Subscriber.id > low, Subscriber.id <= high, receives_digests(now.date()))
        if check_suppressed:
            barred = _suppressed_ids(session, audience)
            if barred:
                audience = and_(audience, Subscriber.id.not_in(barred))
        inserted += _insert(session, edition.id, audience, case((wanted, PENDING), else_=SKIPPED), now)
        low = high
    status.transition(session, edition, status.START)
    skipped = _count(session, edition.id, SKIPPED) - skipped_before
    return FanOut(created=inserted - skipped, skipped=skipped)


def _count(session: Session, edition_id: int, state: str) -> int:
    return session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition_id, Delivery.status == state)
    )


def _suppressed_ids(session: Session, audience) -> list[int]:
    """Ids of the subscribers matching ``audience`` whose address is on the suppression list."""
    rows = session.execute(select(Subscriber.id, Subscriber.email).where(audience)).all()
    barred = suppression.suppressed_among(session, {email for _, email in rows})
    return [sid for sid, email in rows if email in barred]


def _insert(session: Session, edition_id: int, where, state, now: datetime) -> int:
    """Add the ledger rows; how many were added."""
    stamp = literal(now, Delivery.created_at.type)
    rows = select(
        literal(edition_id, Delivery.edition_id.type),
        Subscriber.id,
        state,
        literal(0, Delivery.attempts.type),
        stamp,
        stamp,
    ).where(where)
    cols = ["edition_id", "subscriber_id", "status", "attempts", "created_at", "updated_at"]
    # A reader already in the ledger (a repeated send, a newcomer-only second pass) is
    # passed over on the unique (edition, subscriber) key. Both databases we run on have
    # ON CONFLICT.
    upsert = _UPSERT[session.get_bind().dialect.name]
    stmt = upsert(Delivery).from_select(cols, rows).on_conflict_do_nothing()
    # SQLAlchemy keeps the driver's row count only for UPDATE and DELETE unless asked.
    return session.execute(stmt.execution_options(preserve_rowcount=True)).rowcount


def pending_batches(session: Session, edition_id: int, size: int, *, due_only: bool = False) -> Iterator[list[int]]:
    """The edition's pending delivery ids in id order, ``size`` at a time, streamed from
    the database (a server-side cursor on PostgreSQL): memory holds one batch, whatever
    the audience. ``due_only`` leaves out those still waiting out a retry backoff."""
    q = select(Delivery.id).where(Delivery.edition_id == edition_id, Delivery.status == PENDING)
    if due_only:
        q = q.where(or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= utcnow()))
    result = session.execute(q.order_by(Delivery.id).execution_options(yield_per=size))
    for part in result.scalars().partitions(size):
        yield list(part)


def pending_ids(session: Session, edition_id: int) -> list[int]:
    return [i for part in pending_batches(session, edition_id, 10_000) for i in part]


def batches(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def counts(session: Session, edition_id: int) -> dict[str, int]:
    """Deliveries of an edition by status, e.g. ``{"sent": 3, "pending": 1}``."""
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.edition_id == edition_id).group_by(Delivery.status)
    )
    return {status: n for status, n in rows}
