"""The recipients preview: how many readers an edition would reach if sent now, and who it
would not reach, grouped by why.

It is drawn from the fan-out itself, not from a copy of its rules: :func:`audience` runs
:func:`mailer.delivery.fanout.start_edition` inside a savepoint, reads the ledger rows it
made (``pending``: would be mailed; ``skipped``: nothing in the edition matches their
choices), and rolls the savepoint back, so nothing is kept. Whoever the fan-out left out is
explained from their subscriber row, in the order its rules apply: not confirmed (or
unsubscribed), paused, on the suppression list. Erased subscribers are not people any more
and are not listed. Domain code: takes a session, never commits; a refusal of the fan-out
(a paused or cancelled edition, one with no items) is raised as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.delivery import fanout
from mailer.delivery.models import PENDING, SKIPPED, Delivery
from mailer.digest.editions import EditionError
from mailer.digest.models import Edition
from mailer.digest.plan import DigestPlan
from subscribers import suppression
from subscribers.models import CONFIRMED, ERASED, UNSUBSCRIBED, Subscriber

NO_ITEMS, UNCONFIRMED, UNSUBSCRIBED_REASON = "no-items", "unconfirmed", "unsubscribed"
PAUSED, SUPPRESSED, ALREADY, OTHER = "paused", "suppressed", "already", "other"
# Every reason, in the order the preview shows them, with what it means in words.
REASONS = {
    NO_ITEMS: "No matching items: nothing in this edition matches their topics or partners",
    UNCONFIRMED: "Not confirmed: they have not clicked the link in their confirmation email",
    PAUSED: "Paused: they asked for a break from the digest",
    SUPPRESSED: "Suppressed: the address bounced, complained or is on the do-not-mail list",
    UNSUBSCRIBED_REASON: "Unsubscribed",
    ALREADY: "Already in this edition's ledger (sent or queued before)",
    OTHER: "Left out by the send for another reason",
}


@dataclass(frozen=True)
class Audience:
    will_get: list[int]  # subscriber ids a send now would mail
    will_not: dict[str, list[int]]  # reason -> subscriber ids, every reason present

    @property
    def not_count(self) -> int:
        return sum(len(ids) for ids in self.will_not.values())


def _dry_run(session: Session, edition: Edition, plan: DigestPlan) -> dict[int, str]:
    """subscriber id -> delivery status, for the rows a fan-out now would add."""
    had = set(session.scalars(select(Delivery.subscriber_id).where(Delivery.edition_id == edition.id)))
    savepoint = session.begin_nested()
    try:
        fanout.start_edition(session, edition, plan)
        rows = session.execute(
            select(Delivery.subscriber_id, Delivery.status).where(Delivery.edition_id == edition.id)
        ).all()
    except IntegrityError:
        # A real fan-out committed its rows between our look at the ledger and our own.
        raise EditionError(
            f"The {edition.period} edition is starting to send right now; look again in a moment."
        ) from None
    finally:
        savepoint.rollback()
        session.expire(edition)  # the fan-out moved it to sending; that is undone with the rest
    return {sid: state for sid, state in rows if sid not in had}


def audience(session: Session, edition: Edition, plan: DigestPlan, *, today: date | None = None) -> Audience:
    """Who a fan-out of ``edition`` (over ``plan``) would mail now, and who not, and why."""
    added = _dry_run(session, edition, plan)
    today = today or utcnow().date()
    will_not: dict[str, list[int]] = {reason: [] for reason in REASONS}
    will_get = sorted(sid for sid, state in added.items() if state == PENDING)
    will_not[NO_ITEMS] = sorted(sid for sid, state in added.items() if state == SKIPPED)
    will_not[ALREADY] = sorted(session.scalars(select(Delivery.subscriber_id).where(Delivery.edition_id == edition.id)))
    placed = set(added) | set(will_not[ALREADY])
    left_out = []  # receive digests by status and date: suppressed, or the fan-out knows why
    rows = session.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.status, Subscriber.paused_until)
        .where(Subscriber.status != ERASED)
        .order_by(Subscriber.id)
    )
    for sid, email, status, paused_until in rows:
        if sid in placed:
            continue
        if status == UNSUBSCRIBED:
            will_not[UNSUBSCRIBED_REASON].append(sid)
        elif status != CONFIRMED:
            will_not[UNCONFIRMED].append(sid)
        elif paused_until is not None and paused_until > today:
            will_not[PAUSED].append(sid)
        else:
            left_out.append((sid, email))
    barred = suppression.suppressed_among(session, {email for _, email in left_out})
    for sid, email in left_out:
        will_not[SUPPRESSED if email in barred else OTHER].append(sid)
    return Audience(will_get, will_not)


def people(session: Session, ids: list[int]) -> list[tuple[int, str, str]]:
    """(id, address, name) of the subscribers ``ids`` (one page of a list), in that order."""
    if not ids:
        return []
    found = {
        r.id: (r.id, r.email, r.name or "")
        for r in session.execute(select(Subscriber.id, Subscriber.email, Subscriber.name).where(Subscriber.id.in_(ids)))
    }
    return [found[i] for i in ids if i in found]
