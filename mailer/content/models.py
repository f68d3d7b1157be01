"""Topics, partners and the items partners submit."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, DateTime, ForeignKey, Integer, String, Table, Text, UniqueConstraint
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
# An approved item an editor took back before any edition was sent with it.
WITHDRAWN = "withdrawn"
ITEM_STATUSES = (SUBMITTED, APPROVED, REJECTED, WITHDRAWN)
# How an item came in.
SOURCES = ("form", "feed", "api", "admin")


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # Order of the digest's sections and of the form's checkboxes.
    position: Mapped[int] = mapped_column(Integer, default=0)
    # What the topic covers, in a sentence, for editors and subscribers.
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(160))
    website: Mapped[str | None] = mapped_column(String(500))
    # SHA-256 of the secret in the partner's submission link; the secret itself is never kept.
    submit_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    # Set by the campaign team: the only address partner notices (receipts, decisions) go to.
    contact_email: Mapped[str | None] = mapped_column(String(320))
    # Items from a trusted partner skip moderation (they arrive approved).
    trusted: Mapped[bool] = mapped_column(default=False, server_default="0")
    feed_url: Mapped[str | None] = mapped_column(String(2000))
    # Conditional GET state and the outcome of the last poll, shown to editors.
    feed_etag: Mapped[str | None] = mapped_column(String(500))
    feed_modified: Mapped[str | None] = mapped_column(String(100))
    feed_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    feed_error: Mapped[str | None] = mapped_column(String(1000))


class ApiToken(Base):
    """A bearer token a partner's systems use on the API. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, so an editor can tell tokens apart without the secret.
    prefix: Mapped[str] = mapped_column(String(12))
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    partner: Mapped[Partner] = relationship(lazy="joined")


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
    edition_id: Mapped[int | None] = mapped_column(ForeignKey("editions.id", ondelete="SET NULL"), index=True)
    # Markdown as the partner typed it, and the sanitised HTML made from it.
    body_markdown: Mapped[str] = mapped_column(Text, default="", server_default="")
    body_html: Mapped[str] = mapped_column(Text, default="", server_default="")
    image_url: Mapped[str | None] = mapped_column(String(2000))
    image_alt: Mapped[str | None] = mapped_column(String(300))
    # Events only: when (local time as given) and where.
    event_starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    event_place: Mapped[str | None] = mapped_column(String(300))
    # Publish window: not before (embargo) / not after (expiry); either may be open.
    publish_from: Mapped[date | None] = mapped_column(Date)
    publish_until: Mapped[date | None] = mapped_column(Date)
    # Who sent the item in (typed into the form or API), for the editors to reply to by
    # hand; automatic notices go to the partner's registered contact instead.
    contact_email: Mapped[str | None] = mapped_column(String(320))
    source: Mapped[str] = mapped_column(String(10), default="form", server_default="form")
    # Dedupe key within the partner: "feed:<entry id or link>" or "api:<Idempotency-Key>".
    source_key: Mapped[str | None] = mapped_column(String(600))
    # SHA-256 of the API request body that created the item, to spot a reused key.
    source_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # The partner's own version (JSON) once an editor has changed anything.
    original: Mapped[str | None] = mapped_column(Text)
    featured: Mapped[bool] = mapped_column(default=False, server_default="0")
    decision_reason: Mapped[str | None] = mapped_column(String(1000))
    # Partner notices: set when claimed for sending, so a retried job never mails twice.
    receipt_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    partner: Mapped[Partner] = relationship(lazy="joined")
    topics: Mapped[list[Topic]] = relationship(secondary=item_topics, order_by=Topic.position)
    events: Mapped[list[ItemEvent]] = relationship(
        order_by="ItemEvent.id", back_populates="item", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("partner_id", "source_key"),)


class RejectionReason(Base):
    """A reason moderators pick when rejecting an item: a short name for the list and the
    words the partner is told. Editable in the console; an item keeps the words it was
    rejected with (``Item.decision_reason``), so changing a template changes no decision."""

    __tablename__ = "rejection_reasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)
    text: Mapped[str] = mapped_column(String(1000))
    position: Mapped[int] = mapped_column(Integer, default=0)


class ItemEvent(Base):
    """The moderation log: who did what to an item, when and why. Append-only."""

    __tablename__ = "item_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # submitted, approved, rejected, edited, ...
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(String(1000))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    item: Mapped[Item] = relationship(back_populates="events")
