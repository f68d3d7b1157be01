"""The delivery ledger: one row per edition and subscriber, the truth about sending."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import Base, utcnow

PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
# UNKNOWN: claimed by a worker that died before recording the outcome (see sending.py);
# BOUNCED: the relay accepted it, a bounce report came back later; CANCELLED: edition cancelled.
UNKNOWN, BOUNCED, CANCELLED = "unknown", "bounced", "cancelled"
# Deliveries that still need work; every other status is final.
OPEN = (PENDING, SENDING)


class Delivery(Base):
    """``pending -> sending -> sent | failed | unknown``, ``sent -> bounced``, or ``skipped``
    when there is nothing to read; ``cancelled`` when the edition was cancelled first."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        Index("ix_deliveries_edition_status", "edition_id", "status"),
        # a subscriber's deliveries: their profile, and who left after an edition (dashboard)
        Index("ix_deliveries_subscriber", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Transient failure: not to be claimed again before this time (exponential backoff).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # While ``sending``: the claim (one worker thread's chunk) holding it, and that claim's
    # last heartbeat; a stale heartbeat means a dead worker (see sending.py and control.py).
    claim: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
