"""The operator log of an edition's send: paused, resumed, cancelled, breaker tripped."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import Base, utcnow


class SendEvent(Base):
    __tablename__ = "send_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # paused, resumed, cancelled, breaker
    detail: Mapped[str] = mapped_column(String(500), default="")
    by: Mapped[str] = mapped_column(String(60), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
