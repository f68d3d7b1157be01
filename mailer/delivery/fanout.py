"""Fan-out: one ``Delivery`` row per confirmed subscriber of an edition, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.delivery.models import PENDING, SKIPPED, Delivery
from mailer.digest import status
from mailer.digest.editions import EditionError
from mailer.digest.models import Edition
from mailer.digest.plan import DigestPlan
from subscribers.service import recipients


@dataclass(frozen=True)
class FanOut:
    created: int
    skipped: int


@dataclass(frozen=True)
class Selection:
    """Whom a fan-out of an edition would give a delivery now (subscriber ids)."""

    pending: list[int]  # receive digests and have items in this edition: to be sent
    skipped: list[int]  # receive digests, but nothing in this edition matches their choices
    already: list[int]  # receive digests and already have a delivery of this edition
    receiving: frozenset[int]  # everyone who receives digests now (the three lists together)


def selection(session: Session, edition_id: int, plan: DigestPlan) -> Selection:
    """The fan-out's choice of readers, made and changed nowhere else: the fan-out acts on
    it and the console's recipients preview shows it, so the preview is what the send does."""
    have = set(session.scalars(select(Delivery.subscriber_id).where(Delivery.edition_id == edition_id)))
    pending, skipped, already, receiving = [], [], [], set()
    for r in recipients(session):
        receiving.add(r.id)
        if r.id in have:
            already.append(r.id)
        elif plan.mask_for(r.topic_ids, r.partner_ids):
            pending.append(r.id)
        else:
            skipped.append(r.id)
    return Selection(pending, skipped, already, frozenset(receiving))


def start_edition(session: Session, edition: Edition, plan: DigestPlan) -> FanOut:
    """Move ``edition`` to ``sending`` and add a delivery for each confirmed subscriber
    who has none yet: ``pending`` if the plan has items for them, else ``skipped``.

    Calling it again adds nothing for subscribers already in the ledger, so a repeated
    send never mails anyone twice.
    """
    status.check(edition, status.START)
    if not plan.sections:
        raise EditionError(f"The {edition.period} edition has no approved items to send.")
    chosen = selection(session, edition.id, plan)
    now = utcnow()
    rows = [
        {
            "edition_id": edition.id,
            "subscriber_id": sid,
            "status": state,
            "attempts": 0,
            "error": None,
            "created_at": now,
            "updated_at": now,
        }
        for state, ids in ((PENDING, chosen.pending), (SKIPPED, chosen.skipped))
        for sid in ids
    ]
    rows.sort(key=lambda r: r["subscriber_id"])  # the ledger's ids follow the subscribers' order
    for start in range(0, len(rows), 5000):
        session.execute(insert(Delivery), rows[start : start + 5000])
    status.transition(session, edition, status.START)
    return FanOut(created=len(chosen.pending), skipped=len(chosen.skipped))


def pending_ids(session: Session, edition_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Delivery.id)
            .where(Delivery.edition_id == edition_id, Delivery.status == PENDING)
            .order_by(Delivery.id)
        )
    )


def batches(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def counts(session: Session, edition_id: int) -> dict[str, int]:
    """Deliveries of an edition by status, e.g. ``{"sent": 3, "pending": 1}``."""
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.edition_id == edition_id).group_by(Delivery.status)
    )
    return {status: n for status, n in rows}
