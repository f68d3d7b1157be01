"""The inbound ledger: every message the receiver accepted, one row per recipient."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import Base, utcnow

# received: stored, waiting for (or being given to) the queue; processed: its handler ran;
# failed: its handler refused it (``error`` says why). Nothing moves back to received.
RECEIVED, PROCESSED, FAILED = "received", "processed", "failed"


class InboundMessage(Base):
    """A message accepted for one recipient address, written before the LMTP 250.

    ``raw`` is the message as received (at most ``INBOUND_MAX_BYTES``). Once processed,
    ``raw`` and ``mail_from`` are emptied: the message did its work (the consent ledger or
    the bounce log keeps what matters) and the row should not keep someone's mail.
    A failed message keeps them, so an operator can see what went wrong.
    """

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    route: Mapped[str] = mapped_column(String(20))  # the route kind: unsubscribe, bounce, ...
    recipient: Mapped[str] = mapped_column(String(320))  # the envelope recipient (RCPT TO)
    mail_from: Mapped[str] = mapped_column(String(320), default="")  # "" for the null sender
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    status: Mapped[str] = mapped_column(String(20), default=RECEIVED, index=True)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(String(500))
