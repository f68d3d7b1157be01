"""Suppression list and bounce log.

An address on the suppression list is never mailed a digest again (hard bounce, spam
complaint, or an operator's decision) until the person opts in afresh, which removes it.
Soft bounces are only logged and counted.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import DateTime, ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailer.db import Base, utcnow

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"


class Suppression(Base):
    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased
    reason: Mapped[str] = mapped_column(String(20))  # hard, complaint, manual
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Bounce(Base):
    """One bounce or complaint report, as received (hard, soft or complaint)."""

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def suppress(session: Session, email: str, reason: str, detail: str = "") -> bool:
    """Put ``email`` on the suppression list; False if it was already there."""
    email = email.strip().lower()
    if session.scalar(select(Suppression.id).where(Suppression.email == email)) is not None:
        return False
    session.add(Suppression(email=email, reason=reason, detail=detail[:500]))
    session.flush()
    return True


def lift(session: Session, email: str) -> bool:
    """Take ``email`` off the list (the person opted in afresh). True if it was on it."""
    row = session.scalar(select(Suppression).where(Suppression.email == email.strip().lower()))
    if row is None:
        return False
    session.delete(row)
    return True


def suppressed(session: Session, emails: Iterable[str]) -> set[str]:
    """The lower-cased addresses among ``emails`` that are suppressed."""
    wanted = {e.lower() for e in emails}
    if not wanted:
        return set()
    return set(session.scalars(select(Suppression.email).where(Suppression.email.in_(wanted))))


def soft_bounce_count(session: Session, email: str) -> int:
    return session.scalar(select(func.count()).select_from(Bounce).where(
        Bounce.email == email.lower(), Bounce.kind == SOFT)) or 0


# A refused recipient is suppressed at once when the relay says the mailbox does not exist
# (enhanced status 5.1.x, 5.2.1); other permanent refusals (policy, content) count, and
# the address is suppressed after this many.
REFUSALS_BEFORE_SUPPRESSION = 3


def mailbox_gone(reply: str) -> bool:
    import re

    m = re.search(r"\b5\.(\d)\.(\d)\b", reply)
    if m:
        return m.group(1) == "1" or (m.group(1), m.group(2)) == ("2", "1")
    return reply.startswith(("550", "551", "553"))


def record_refusal(session: Session, delivery_id: int, email: str, reply: str) -> bool:
    """Log a relay's permanent refusal of ``email`` as a hard bounce; suppress the address
    if the mailbox is gone or it was refused often enough. True if suppressed now."""
    email = email.lower()
    session.add(Bounce(delivery_id=delivery_id, email=email, kind=HARD, detail=f"relay: {reply}"[:500]))
    session.flush()
    refusals = session.scalar(select(func.count()).select_from(Bounce).where(
        Bounce.email == email, Bounce.kind == HARD)) or 0
    if mailbox_gone(reply) or refusals >= REFUSALS_BEFORE_SUPPRESSION:
        return suppress(session, email, HARD, reply)
    return False
