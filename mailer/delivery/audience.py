"""The recipients preview: how many readers an edition will reach now, and who it will not
reach, grouped by why.

Those who get it, and those who receive digests but find nothing for them in this edition,
come from :func:`mailer.delivery.fanout.selection`, the fan-out's own choice. Everyone else
is someone :func:`subscribers.service.recipients` leaves out; the reason is read off their
row in the order that function applies its rules (not confirmed, paused, suppressed).
Erased subscribers are not people any more and are not listed. Domain code: takes a
session, never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.delivery.fanout import selection
from mailer.digest.plan import DigestPlan
from subscribers.models import ERASED, PENDING, UNSUBSCRIBED, Subscriber

NO_ITEMS, UNCONFIRMED, UNSUBSCRIBED_REASON = "no-items", "unconfirmed", "unsubscribed"
PAUSED, SUPPRESSED, ALREADY = "paused", "suppressed", "already"
# Every reason, in the order the preview shows them, with what it means in words.
REASONS = {
    NO_ITEMS: "No matching items: nothing in this edition matches their topics or partners",
    UNCONFIRMED: "Not confirmed: they have not clicked the link in their confirmation email",
    PAUSED: "Paused: they asked for a break from the digest",
    SUPPRESSED: "Suppressed: the address bounced, complained or is on the do-not-mail list",
    UNSUBSCRIBED_REASON: "Unsubscribed",
    ALREADY: "Already in this edition's ledger (sent or queued before)",
}


@dataclass(frozen=True)
class Audience:
    will_get: list[int]  # subscriber ids a send now would mail
    will_not: dict[str, list[int]]  # reason -> subscriber ids, every reason present

    @property
    def not_count(self) -> int:
        return sum(len(ids) for ids in self.will_not.values())


def audience(session: Session, edition_id: int, plan: DigestPlan, *, today: date | None = None) -> Audience:
    """Who a fan-out of ``edition_id`` (over ``plan``) would mail now, and who not, why."""
    chosen = selection(session, edition_id, plan)
    today = today or utcnow().date()
    will_not: dict[str, list[int]] = {reason: [] for reason in REASONS}
    will_not[NO_ITEMS] = list(chosen.skipped)
    will_not[ALREADY] = list(chosen.already)
    rows = session.execute(
        select(Subscriber.id, Subscriber.status, Subscriber.paused_until)
        .where(Subscriber.status != ERASED)
        .order_by(Subscriber.id)
    )
    for sid, status, paused_until in rows:
        if sid in chosen.receiving:
            continue
        if status == PENDING:
            will_not[UNCONFIRMED].append(sid)
        elif status == UNSUBSCRIBED:
            will_not[UNSUBSCRIBED_REASON].append(sid)
        elif paused_until is not None and paused_until > today:
            will_not[PAUSED].append(sid)
        else:
            will_not[SUPPRESSED].append(sid)
    return Audience(list(chosen.pending), will_not)


def people(session: Session, ids: list[int]) -> list[tuple[int, str, str]]:
    """(id, address, name) of the subscribers ``ids`` (one page of a list), in that order."""
    if not ids:
        return []
    found = {
        r.id: (r.id, r.email, r.name or "")
        for r in session.execute(select(Subscriber.id, Subscriber.email, Subscriber.name).where(Subscriber.id.in_(ids)))
    }
    return [found[i] for i in ids if i in found]
