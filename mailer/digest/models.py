"""Editions: one per month, freezing the items that month's digests carry."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import Base, utcnow

DRAFT, SENDING, SENT = "draft", "sending", "sent"


class Edition(Base):
    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), unique=True)  # YYYY-MM
    status: Mapped[str] = mapped_column(String(20), default=DRAFT)
    subject: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str] = mapped_column(String(2000), default="")
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
