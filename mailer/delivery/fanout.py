"""Fan-out: one ``Delivery`` row per confirmed subscriber of an edition, idempotently.

The rows are made in the database (``INSERT ... SELECT``), one bounded range of
subscriber ids at a time, so the fan-out's memory does not grow with the audience; the
pending ids are then read back as a stream (:func:`pending_batches`) and enqueued batch by
batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, false, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.delivery.models import PENDING, SKIPPED, Delivery
from mailer.digest import status
from mailer.digest.editions import EditionError
from mailer.digest.models import CANCELLED, SENDING, Edition
from mailer.digest.plan import DigestPlan
from subscribers import suppression
from subscribers.models import Subscriber, Suppression, subscriber_partners, subscriber_topics
from subscribers.service import receives_digests

# Subscribers per INSERT ... SELECT: bounds each statement (and the addresses read to check
# the suppression list), not the transaction, which stays one so the edition starts whole.
FANOUT_BATCH = 20_000
_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


# Subscribers in the first transaction of a send's fan-out (``first``): the first copies
# leave once these are in the ledger, while the rest are added a range at a time.
FANOUT_FIRST = 2_000


@dataclass(frozen=True)
class FanOut:
    created: int
    skipped: int


@dataclass(frozen=True)
class _Audience:
    """What each range's ``INSERT ... SELECT`` of an edition's fan-out needs."""

    wanted: object  # the SQL condition under which a reader has something to read
    check_suppressed: bool
    now: datetime


def _audience(session: Session, plan: DigestPlan) -> _Audience:
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
    return _Audience(wanted, session.scalar(select(Suppression.id).limit(1)) is not None, utcnow())


def start_edition(
    session: Session, edition: Edition, plan: DigestPlan, *, batch: int = FANOUT_BATCH, first: int | None = None
) -> FanOut:
    """Move ``edition`` to ``sending`` and add a delivery for each confirmed subscriber
    who has none yet: ``pending`` if the plan has items for them, else ``skipped``.

    Who receives is :func:`subscribers.service.receives_digests` (confirmed, not paused)
    less the suppression list (keyed hashes, so checked here per range of subscribers).
    Calling it again adds nothing for subscribers already in the ledger, so a repeated
    send never mails anyone twice.

    With ``first``, only the first ``first`` subscribers (by id) are added, and the
    edition records where its fan-out stands (``fanout_after``, and ``fanout_beat_at``):
    :func:`extend` adds the rest, a range a transaction, so the first copies can leave
    while it does. The edition is not marked sent before its ledger is whole; a fan-out
    that stops half-way is started again by the workers' sweep (see
    :func:`stalled_fanouts`). Without ``first`` the ledger is made whole here.
    """
    status.check(edition, status.START)
    if not plan.sections:
        raise EditionError(f"The {edition.period} edition has no approved items to send.")
    audience = _audience(session, plan)
    # What this call made, from the statements' own row counts: counting the edition's
    # ledger before and after cost two scans of every row (150 ms each at 100,000 readers).
    # Only the skipped ones are counted, through the (edition, status) index.
    skipped_before = _count(session, edition.id, SKIPPED)
    inserted = 0
    low = 0
    while True:
        high, added = _add_range(session, edition.id, audience, low, first or batch)
        if high is None:
            break
        inserted += added
        low = high
        if first is not None:
            break
    status.transition(session, edition, status.START)
    # Readers after `low` still to come, or none: the ledger is whole.
    edition.fanout_after = low if first is not None and low else None
    edition.fanout_beat_at = audience.now if edition.fanout_after is not None else None
    skipped = _count(session, edition.id, SKIPPED) - skipped_before
    return FanOut(created=inserted - skipped, skipped=skipped)


def extend(session: Session, edition_id: int, plan: DigestPlan, *, batch: int = FANOUT_BATCH) -> bool:
    """Add the next range of readers to an edition whose fan-out is under way (see
    :func:`start_edition`'s ``first``), under the edition's row lock; whether more are to
    come. Nothing is added once the ledger is whole (another fan-out finished it) or the
    edition was cancelled meanwhile."""
    edition = session.get(Edition, edition_id, with_for_update=True)
    if edition is None or edition.fanout_after is None:
        return False
    if edition.status == CANCELLED:
        edition.fanout_after = edition.fanout_beat_at = None
        return False
    audience = _audience(session, plan)
    high, _ = _add_range(session, edition_id, audience, edition.fanout_after, batch)
    edition.fanout_after = high
    edition.fanout_beat_at = audience.now if high is not None else None
    return high is not None


def stalled_fanouts(session: Session, lease_seconds: float) -> list[int]:
    """Editions still sending whose fan-out has added nothing for ``lease_seconds``: the
    process making it died (its job is to be run again, which completes the ledger)."""
    quiet_since = utcnow() - timedelta(seconds=lease_seconds)
    return list(
        session.scalars(
            select(Edition.id).where(
                Edition.status == SENDING,  # paused: the sweep runs it once resumed
                Edition.fanout_after.is_not(None),
                Edition.fanout_beat_at < quiet_since,
            )
        )
    )


def _add_range(session: Session, edition_id: int, audience: _Audience, low: int, limit: int) -> tuple[int | None, int]:
    """Add the ledger rows of the next ``limit`` subscribers after id ``low``; the last
    subscriber id of the range (None: there were none) and how many rows were added."""
    span = select(Subscriber.id).where(Subscriber.id > low).order_by(Subscriber.id).limit(limit).subquery()
    high = session.scalar(select(func.max(span.c.id)))
    if high is None:
        return None, 0
    # Readers already in the ledger are passed over by the INSERT's ON CONFLICT on the
    # (edition, subscriber) key, one index probe each, not by a NOT EXISTS here: that
    # anti-join's plan followed the ledger's statistics, and with an empty ledger just
    # analysed (a first edition) it was a nested loop reading the ledger, as this very
    # statement filled it, once per reader: 3 s of a 20,000-reader range's 3.3 s.
    where = and_(Subscriber.id > low, Subscriber.id <= high, receives_digests(audience.now.date()))
    if audience.check_suppressed:
        barred = _suppressed_ids(session, where)
        if barred:
            where = and_(where, Subscriber.id.not_in(barred))
    state = case((audience.wanted, PENDING), else_=SKIPPED)
    return high, _insert(session, edition_id, where, state, audience.now)


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


def pending_batches(
    session: Session, edition_id: int, size: int, *, due_only: bool = False, after: int = 0
) -> Iterator[list[int]]:
    """The edition's pending delivery ids in id order, ``size`` at a time, streamed from
    the database (a server-side cursor on PostgreSQL): memory holds one batch, whatever
    the audience. ``due_only`` leaves out those still waiting out a retry backoff;
    ``after``, those whose id is not above it."""
    q = select(Delivery.id).where(Delivery.edition_id == edition_id, Delivery.status == PENDING, Delivery.id > after)
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
