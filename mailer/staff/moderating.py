"""A person moderating partner items from the console: claim, edit, approve (one or many),
reject, feature, withdraw, each under a claim and written to the audit log.

The decisions themselves are :mod:`mailer.content.moderation`'s (and
:func:`mailer.digest.editions.withdraw_item`'s); this module adds who may act and the
record of it. Every action first takes the item's claim (:mod:`mailer.staff.claims`) in
the caller's transaction: someone else's live claim refuses it with :class:`Busy`, and two
people racing for one item are serialised by the claim row, so the second sees the first
one's decision. Decisions end the claim; an edit or a feature mark keeps it (the person is
still working). Functions never commit and never send mail: the edge enqueues the partner
notices after its commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.orm import Session

from mailer.content import moderation
from mailer.content.intake import ItemDraft
from mailer.content.models import Item
from mailer.content.moderation import ModerationError
from mailer.digest.editions import withdraw_item as withdraw_from_edition
from mailer.staff import audit, claims
from mailer.staff.claims import ClaimOutcome, Holder
from mailer.staff.models import StaffUser

KIND = "item"  # the inbox source and claim kind of partner items


class Busy(ModerationError):
    """Someone else holds the item's claim."""

    def __init__(self, item_id: int, holder: Holder):
        self.holder = holder
        super().__init__(
            f"{holder.username} is working on item {item_id} (claimed at {holder.claimed_at:%H:%M} UTC, "
            f"until {holder.expires_at:%H:%M} UTC unless they release it)."
        )


def _take(session: Session, user: StaffUser, item_id: int, now: datetime) -> Item:
    item = moderation.get_item(session, item_id)
    outcome = claims.claim(session, KIND, item_id, user, now)
    if not outcome:
        raise Busy(item_id, outcome.holder)
    return item


def claim_item(session: Session, user: StaffUser, item_id: int, *, now: datetime, ip: str | None) -> ClaimOutcome:
    """Claim (or renew the claim on) an item; :class:`Busy` when someone else holds it."""
    moderation.get_item(session, item_id)
    outcome = claims.claim_noted(session, KIND, ("items", item_id), user, now, noun="item", ip=ip)
    if not outcome:
        raise Busy(item_id, outcome.holder)
    return outcome


def release_item(session: Session, user: StaffUser, item_id: int, *, ip: str | None) -> bool:
    """Give up one's own claim (someone else's stays). True if there was one."""
    return claims.release_noted(session, KIND, ("items", item_id), user, noun="item", ip=ip)


def approve_item(session: Session, user: StaffUser, item_id: int, *, now: datetime, ip: str | None) -> Item:
    item = _take(session, user, item_id, now)
    before = item.status
    moderation.approve(session, item_id, user.username)
    if before != item.status:
        audit.record(
            session, user, "item.approve", item, before={"status": before}, after={"status": item.status}, ip=ip
        )
    claims.release(session, KIND, item_id)
    return item


@dataclass
class BulkOutcome:
    approved: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # id -> why not


def approve_each(session: Session, ids, approve_one, refusal: type[Exception]) -> BulkOutcome:
    """Run ``approve_one(id)`` for each of ``ids`` (duplicates once), each in a savepoint:
    one that raises ``refusal`` is left exactly as it was and reported with why; the
    others stand."""
    out = BulkOutcome()
    for one in dict.fromkeys(ids):
        try:
            with session.begin_nested():
                approve_one(one)
            out.approved.append(one)
        except refusal as err:
            out.refused[one] = str(err)
    return out


def approve_items(session: Session, user: StaffUser, item_ids, *, now: datetime, ip: str | None) -> BulkOutcome:
    """Approve each of ``item_ids`` that can be; the others (claimed by someone else, no
    topic, already decided...) are left exactly as they were and reported with why."""
    return approve_each(session, item_ids, lambda i: approve_item(session, user, i, now=now, ip=ip), ModerationError)


def reject_item(session: Session, user: StaffUser, item_id: int, reason: str, *, now: datetime, ip: str | None) -> Item:
    item = _take(session, user, item_id, now)
    before = item.status
    moderation.reject(session, item_id, user.username, reason)
    if before != item.status:
        audit.record(
            session,
            user,
            "item.reject",
            item,
            before={"status": before},
            after={"status": item.status, "reason": item.decision_reason},
            ip=ip,
        )
    claims.release(session, KIND, item_id)
    return item


def edit_item(
    session: Session,
    user: StaffUser,
    item_id: int,
    draft: ItemDraft,
    *,
    today: date,
    now: datetime,
    ip: str | None,
    note: str = "",
) -> Item:
    """Change a submitted item (the partner's original is kept once); the audit entry holds
    the fields that changed, before and after."""
    item = _take(session, user, item_id, now)
    before = moderation.snapshot(item)
    moderation.edit(session, item_id, user.username, draft, today=today, note=note)
    after = moderation.snapshot(item)
    changed = [k for k in after if before.get(k) != after.get(k)]
    audit.record(
        session,
        user,
        "item.edit",
        item,
        before={k: before.get(k) for k in changed},
        after={**{k: after[k] for k in changed}, **({"note": note.strip()} if note.strip() else {})},
        ip=ip,
    )
    return item


def feature_item(
    session: Session, user: StaffUser, item_id: int, featured: bool, *, now: datetime, ip: str | None
) -> Item:
    item = _take(session, user, item_id, now)
    before = item.featured
    moderation.set_featured(session, item_id, user.username, featured)
    if before != item.featured:
        action = "item.feature" if featured else "item.unfeature"
        audit.record(session, user, action, item, before={"featured": before}, after={"featured": featured}, ip=ip)
    return item


def withdraw_item(
    session: Session, user: StaffUser, item_id: int, reason: str, *, now: datetime, ip: str | None
) -> Item:
    """Take an approved item back before its edition is sent."""
    item = _take(session, user, item_id, now)
    before = item.status
    withdraw_from_edition(session, item_id, user.username, reason)
    if before != item.status:
        audit.record(
            session,
            user,
            "item.withdraw",
            item,
            before={"status": before},
            after={"status": item.status, "reason": reason.strip() or None},
            ip=ip,
        )
    claims.release(session, KIND, item_id)
    return item
