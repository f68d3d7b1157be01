"""Editions: one per month, freezing the items that month's digests carry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.db import Base, utcnow

# An edition's statuses, spelled here only. Which moves between them are allowed, and the
# one place that makes them, is mailer.digest.status.
DRAFT, SENDING, SENT = "draft", "sending", "sent"
SCHEDULED, CANCELLED, PAUSED = "scheduled", "cancelled", "paused"
STATUSES = (DRAFT, SCHEDULED, SENDING, PAUSED, SENT, CANCELLED)
# Still the editor's until the send starts: its fields may change, a rebuild changes its items.
EDITABLE = (DRAFT, SCHEDULED)
# A send asked for and not yet over (a draft until the fan-out has run): what an operator
# waiting on ``mailer edition send --wait`` or ``edition status --wait`` waits through.
UNFINISHED = (DRAFT, SENDING)


class Edition(Base):
    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), unique=True)  # YYYY-MM
    status: Mapped[str] = mapped_column(String(20), default=DRAFT)  # a new edition is a draft
    subject: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str] = mapped_column(String(2000), default="")
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Hidden first line inbox lists show after the subject; empty means a generated one.
    preheader: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # An item of this edition shown first; a plain id (not a foreign key) because items
    # already point at editions, and a cycle of keys complicates every migration.
    featured_item_id: Mapped[int | None] = mapped_column(Integer)
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Carried in every preview link; raising it makes every link issued so far stop working.
    preview_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The editor's order of items (ids, first first) within their sections; items not
    # listed follow in the default order (newest first). None: the default order throughout.
    item_order: Mapped[list[int] | None] = mapped_column(JSON)
    # Separation of duties (mailer.staff.approval): the staff account that last built or
    # changed the edition in the console (None: the scheduler or a command), and who
    # approved it since. Plain ids, not foreign keys: staff accounts belong to a layer
    # above this one, and the audit log names people anyway.
    changed_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "What networks are doing": the month's threads that groups share with the digest,
    # frozen when the edition is built (plain data: group name, subject, link, replies,
    # topic id; see mailer.groups.network). None: built before groups shared anything.
    networks: Mapped[list[dict] | None] = mapped_column(JSON)
    # A send's fan-out under way (mailer.delivery.fanout): the last subscriber id whose
    # deliveries are in the ledger while later readers are still being added, and when the
    # last range was added. None once the ledger is whole; never marked sent before.
    fanout_after: Mapped[int | None] = mapped_column(Integer)
    fanout_beat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
