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


def start_edition(session: Session, edition: Edition, plan: DigestPlan) -> FanOut:
    """Move ``edition`` to ``sending`` and add a delivery for each confirmed subscriber
    who has none yet: ``pending`` if the plan has items for them, else ``skipped``.

    Calling it again adds nothing for subscribers already in the ledger, so a repeated
    send never mails anyone twice.
    """
    status.check(edition, status.START)
    if not plan.sections:
        raise EditionError(f"The {edition.period} edition has no approved items to send.")
    have = set(session.scalars(select(Delivery.subscriber_id).where(Delivery.edition_id == edition.id)))
    now = utcnow()
    rows, skipped = [], 0
    for r in recipients(session):
        if r.id in have:
            continue
        wanted = plan.mask_for(r.topic_ids, r.partner_ids)
        skipped += not wanted
        rows.append(
            {
                "edition_id": edition.id,
                "subscriber_id": r.id,
                "status": PENDING if wanted else SKIPPED,
                "attempts": 0,
                "error": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    for start in range(0, len(rows), 5000):
        session.execute(insert(Delivery), rows[start : start + 5000])
    status.transition(session, edition, status.START)
    return FanOut(created=len(rows) - skipped, skipped=skipped)


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
