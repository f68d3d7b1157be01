"""Claims: a moderator says "I am working on this one", so two people never work the same
held thing. A claim names its owner and when it was made, is shown to everyone else, and
lapses after :data:`CLAIM_MINUTES` without a renewal (acting on the thing renews it).

Race-safety comes from the database, not from what a request loaded: a claim is one row
keyed by ``(kind, object_id)``. :func:`claim` first tries one conditional UPDATE (take over
a lapsed claim, or renew one's own), then an INSERT inside a savepoint; when two requests
race, PostgreSQL's row lock or unique index (SQLite's single writer) lets exactly one of
them through, and the other sees the winner's claim. Functions never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.staff import audit
from mailer.staff.models import Claim, StaffUser

CLAIM_MINUTES = 30


@dataclass(frozen=True)
class Holder:
    """Who holds a live claim, since when and until when."""

    staff_id: int
    username: str
    claimed_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class ClaimOutcome:
    ok: bool  # True: ``user`` holds the claim now
    holder: Holder | None  # the claim as it stands (the winner's, when ``ok`` is False)

    def __bool__(self) -> bool:
        return self.ok


def _cutoff(now: datetime) -> datetime:
    return now - timedelta(minutes=CLAIM_MINUTES)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they are stored as UTC.
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _holder(row: Claim) -> Holder:
    at = _aware(row.claimed_at)
    return Holder(row.staff_id, row.staff.username, at, at + timedelta(minutes=CLAIM_MINUTES))


def current(session: Session, kind: str, object_id: int, now: datetime) -> Holder | None:
    """The live claim on ``(kind, object_id)``, or None (never claimed, released, lapsed)."""
    row = session.scalar(
        select(Claim)
        .where(Claim.kind == kind, Claim.object_id == object_id, Claim.claimed_at > _cutoff(now))
        .execution_options(populate_existing=True)
    )
    return _holder(row) if row is not None else None


def current_many(session: Session, kind: str, object_ids, now: datetime) -> dict[int, Holder]:
    """Live claims on many things of one kind, by object id (one query, for a list page)."""
    ids = list(object_ids)
    if not ids:
        return {}
    rows = session.scalars(
        select(Claim).where(Claim.kind == kind, Claim.object_id.in_(ids), Claim.claimed_at > _cutoff(now))
    )
    return {r.object_id: _holder(r) for r in rows}


def claim(session: Session, kind: str, object_id: int, user: StaffUser, now: datetime) -> ClaimOutcome:
    """Claim ``(kind, object_id)`` for ``user`` (renewing their own claim), unless someone
    else holds a live claim: then nothing changes and the outcome names them."""
    taken = session.execute(
        update(Claim)
        .where(
            Claim.kind == kind,
            Claim.object_id == object_id,
            (Claim.staff_id == user.id) | (Claim.claimed_at <= _cutoff(now)),
        )
        .values(staff_id=user.id, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:
        return ClaimOutcome(True, current(session, kind, object_id, now))
    try:
        with session.begin_nested():
            session.add(Claim(kind=kind, object_id=object_id, staff_id=user.id, claimed_at=now))
    except IntegrityError:
        pass  # someone else's live claim exists (or won the race for a new one)
    holder = current(session, kind, object_id, now)
    return ClaimOutcome(holder is not None and holder.staff_id == user.id, holder)


def release(session: Session, kind: str, object_id: int, user: StaffUser | None = None) -> bool:
    """End the claim on ``(kind, object_id)``: ``user``'s own, or any claim when ``user`` is
    None (the thing was decided, so nobody works on it any more). True if one ended."""
    q = delete(Claim).where(Claim.kind == kind, Claim.object_id == object_id)
    if user is not None:
        q = q.where(Claim.staff_id == user.id)
    return session.execute(q.execution_options(synchronize_session=False)).rowcount > 0


def claim_noted(
    session: Session, kind: str, ref: tuple[str, int], user: StaffUser, now: datetime, *, noun: str, ip: str | None
) -> ClaimOutcome:
    """:func:`claim` of the thing ``ref`` (its table and id), with an audit entry
    ``<noun>.claim`` when the claim is new to ``user`` (a renewal is not news)."""
    before = current(session, kind, ref[1], now)
    outcome = claim(session, kind, ref[1], user, now)
    if outcome and (before is None or before.staff_id != user.id):
        until = outcome.holder.expires_at.isoformat()
        audit.record(session, user, f"{noun}.claim", ref, after={"until": until}, ip=ip)
    return outcome


def release_noted(
    session: Session, kind: str, ref: tuple[str, int], user: StaffUser, *, noun: str, ip: str | None
) -> bool:
    """Give up ``user``'s own claim on ``ref`` (someone else's stays), with an audit entry
    ``<noun>.release``. True if there was one."""
    released = release(session, kind, ref[1], user)
    if released:
        audit.record(session, user, f"{noun}.release", ref, ip=ip)
    return released


def blocked_by(session: Session, kind: str, object_id: int, user: StaffUser, now: datetime) -> Holder | None:
    """Someone else's live claim on the thing, which stops ``user`` acting on it; else None."""
    holder = current(session, kind, object_id, now)
    return holder if holder is not None and holder.staff_id != user.id else None
