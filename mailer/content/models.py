"""Topics, partners and the items partners submit."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, DateTime, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.db import Base, utcnow

ITEM_KINDS = {
    "news": "News",
    "case_study": "Case study",
    "event": "Event",
    "resource": "Resource or tool",
    "call_to_action": "Call to action",
    "pledge_update": "Pledge update",
}

SUBMITTED, APPROVED, REJECTED = "submitted", "approved", "rejected"


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # Order of the digest's sections and of the form's checkboxes.
    position: Mapped[int] = mapped_column(Integer, default=0)


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(160))
    website: Mapped[str | None] = mapped_column(String(500))
    # SHA-256 of the secret in the partner's submission link; the secret itself is never kept.
    submit_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)


item_topics = Table(
    "item_topics",
    Base.metadata,
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Item(Base):
    """Something a partner wants in the digest. ``submitted`` until an editor decides."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), default=SUBMITTED, index=True)
    # The day the item belongs to; an edition for a month takes items dated in that month.
    dated: Mapped[date] = mapped_column(Date, index=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(120))
    # Set when an edition freezes its items, so an item is carried by one edition only.
    edition_id: Mapped[int | None] = mapped_column(
        ForeignKey("editions.id", ondelete="SET NULL"), index=True
    )

    partner: Mapped[Partner] = relationship(lazy="joined")
    topics: Mapped[list[Topic]] = relationship(secondary=item_topics, order_by=Topic.position)
