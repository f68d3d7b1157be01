"""Bounce log, and the delivery engine's way onto the suppression list.

Hard bounces and complaints put the address on the one suppression list, kept (as hashes)
by ``subscribers.suppression``; it is lifted only when the person opts in afresh. Soft
bounces are only logged and counted.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailer.db import Base, utcnow
from subscribers import suppression

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"


class Bounce(Base):
    """One bounce or complaint report (hard, soft or complaint).

    Like the suppression list it keeps no address: ``email_hash`` is the keyed suppression hash and
    the address is blanked out of ``detail``, so erasing a subscriber leaves nothing here
    that names them.
    """

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"), index=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# The bounce kinds here, as the subscribers' suppression list names its reasons.
_REASONS = {HARD: "hard_bounce", COMPLAINT: "complaint"}


def suppress(session: Session, email: str, kind: str, source: str) -> bool:
    """Put ``email`` on the one suppression list (``subscribers.suppression``) for a hard
    bounce or complaint; False if it was already there."""
    reason = _REASONS[kind]
    entry = suppression.suppression_for(session, email)
    if entry is not None and entry.reason == reason:
        return False
    # An unsubscribed address that now bounces or complains is recorded under the stronger
    # reason: it tells the operator the mailbox, not just the person, said no.
    suppression.suppress(session, email, reason, source)
    return True


def log_bounce(session: Session, delivery_id: int | None, email: str, kind: str, detail: str) -> None:
    """Append a report to the bounce log, without the address."""
    scrubbed = re.sub(re.escape(email), "<recipient>", detail, flags=re.IGNORECASE)
    session.add(
        Bounce(
            delivery_id=delivery_id,
            email_hash=suppression.current_hash(session, email),
            kind=kind,
            detail=scrubbed[:500],
        )
    )
    session.flush()


def bounces_of(session: Session, email: str, delivery_ids=(), limit: int = 50) -> list[Bounce]:
    """The newest bounce and complaint reports about ``email`` (by its hash under every
    key) or about any of ``delivery_ids``, at most ``limit``."""
    cond = Bounce.email_hash.in_(suppression.hashes_of(session, email))
    if delivery_ids:
        cond = cond | Bounce.delivery_id.in_(list(delivery_ids))
    return list(session.scalars(select(Bounce).where(cond).order_by(Bounce.received_at.desc()).limit(limit)))


def soft_bounce_count(session: Session, email: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Bounce)
            .where(Bounce.email_hash.in_(suppression.hashes_of(session, email)), Bounce.kind == SOFT)
        )
        or 0
    )


# A refused recipient is suppressed at once when the relay says the mailbox does not exist
# (enhanced status 5.1.x, 5.2.1); other permanent refusals (policy, content) count, and
# the address is suppressed after this many.
REFUSALS_BEFORE_SUPPRESSION = 3


def mailbox_gone(reply: str) -> bool:
    m = re.search(r"\b5\.(\d)\.(\d)\b", reply)
    if m:
        return m.group(1) == "1" or (m.group(1), m.group(2)) == ("2", "1")
    return reply.startswith(("550", "551", "553"))


def record_refusal(session: Session, delivery_id: int, email: str, reply: str) -> bool:
    """Log a relay's permanent refusal of ``email`` as a hard bounce; suppress the address
    if the mailbox is gone or it was refused often enough. True if suppressed now."""
    log_bounce(session, delivery_id, email, HARD, f"relay: {reply}")
    refusals = (
        session.scalar(
            select(func.count())
            .select_from(Bounce)
            .where(Bounce.email_hash.in_(suppression.hashes_of(session, email)), Bounce.kind == HARD)
        )
        or 0
    )
    if mailbox_gone(reply) or refusals >= REFUSALS_BEFORE_SUPPRESSION:
        return suppress(session, email, HARD, "relay refusal")
    return False
