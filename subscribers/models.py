"""Subscribers, their topic and partner choices, and the append-only consent ledger."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.content.models import Partner, Topic
from mailer.db import Base, utcnow

PENDING, CONFIRMED, UNSUBSCRIBED = "pending", "confirmed", "unsubscribed"

subscriber_topics = Table(
    "subscriber_topics",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)

subscriber_partners = Table(
    "subscriber_partners",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("partner_id", ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True),
)


class Subscriber(Base):
    """One address. Only ``confirmed`` subscribers receive digests."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored as normalised by email-validator (domain lower-cased), unique.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    organisation: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default=PENDING, index=True)
    # Bumped to revoke every link already sent to this person.
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    topics: Mapped[list[Topic]] = relationship(secondary=subscriber_topics, order_by=Topic.position)
    partners: Mapped[list[Partner]] = relationship(secondary=subscriber_partners, order_by=Partner.name)


class ConsentEvent(Base):
    """Append-only record of what a subscriber agreed to, when, and how."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))  # subscribed, confirmed, changed, unsubscribed
    source: Mapped[str] = mapped_column(String(30))  # form, link, one-click, import, admin
    wording_version: Mapped[str] = mapped_column(String(20))
    ip: Mapped[str | None] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
