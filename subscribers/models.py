"""Subscribers, their topic and partner choices, the append-only consent ledger and the
suppression list."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, String, Table, Text, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import ColumnElement

from mailer.content.models import Partner, Topic
from mailer.db import Base, utcnow

PENDING, CONFIRMED, UNSUBSCRIBED, ERASED = "pending", "confirmed", "unsubscribed", "erased"

# (value, label) in form order. GP practices are "corporate subscribers" in PECR terms.
ORGANISATION_TYPES = (
    ("gp_practice", "GP practice"),
    ("nhs_trust", "NHS trust"),
    ("bme_staff_network", "BME staff network"),
    ("voluntary", "Voluntary organisation"),
    ("local_authority", "Local authority"),
    ("other", "Other"),
)

# Why an address is on the suppression list.
SUPPRESSION_REASONS = ("unsubscribed", "hard_bounce", "complaint", "erased")

subscriber_topics = Table(
    "subscriber_topics",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
    # The primary key leads with the subscriber; "who follows topic X" (the console's
    # filter) needs the topic first.
    Index("ix_subscriber_topics_topic_id", "topic_id"),
)

subscriber_partners = Table(
    "subscriber_partners",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("partner_id", ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_subscriber_partners_partner_id", "partner_id"),
)


class Subscriber(Base):
    """One address. Only ``confirmed``, unpaused, unsuppressed subscribers receive digests."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored as normalised by email-validator (domain lower-cased), unique.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    organisation: Mapped[str] = mapped_column(String(200), default="")
    organisation_type: Mapped[str] = mapped_column(String(30), default="", server_default="")
    # NHS ODS code of a GP practice (e.g. "A81001"), optional.
    practice_code: Mapped[str] = mapped_column(String(10), default="", server_default="", index=True)
    status: Mapped[str] = mapped_column(String(20), default=PENDING, index=True)
    # Bumped to revoke every link already sent to this person.
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the current pending request was made; unconfirmed requests are purged from it.
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # No digests up to and including the day before this date.
    paused_until: Mapped[date | None] = mapped_column(Date)
    # "consent" (the form) or e.g. "legitimate-interests" (imported corporate subscribers).
    consent_basis: Mapped[str] = mapped_column(String(40), default="consent", server_default="consent")
    # What the latest unconfirmed subscribe request asked for (profile fields and topic and
    # partner ids, see subscribers.profile.request_data). Anyone can type any address, so
    # the request stays here, apart from the profile above, until the owner confirms.
    pending_request: Mapped[dict | None] = mapped_column(JSON)

    topics: Mapped[list[Topic]] = relationship(secondary=subscriber_topics, order_by=Topic.position)
    partners: Mapped[list[Partner]] = relationship(secondary=subscriber_partners, order_by=Partner.name)


# by_address and the console's address search compare lower(email): an index on the
# expression keeps that an index lookup among 100,000 rows.
Index("ix_subscribers_email_lower", func.lower(Subscriber.email))

SEARCH_SEPARATOR = "\x1f"  # chr(31), between the fields of search_text()


class _FieldSeparator(ColumnElement):
    """The character between the fields of :func:`search_text`: a control character, which
    no stored field holds (see ``mailer.validation.clean_text``), so no match spans two."""

    type = Text()
    inherit_cache = True


@compiles(_FieldSeparator)
def _separator(element, compiler, **kw) -> str:
    return f"chr({ord(SEARCH_SEPARATOR)})"


@compiles(_FieldSeparator, "sqlite")
def _separator_sqlite(element, compiler, **kw) -> str:
    return f"char({ord(SEARCH_SEPARATOR)})"


def search_text() -> ColumnElement:
    """Address, name and organisation, lower-cased, in one text: what the console's
    "contains" search matches. On PostgreSQL one trigram GIN index covers it (pg_trgm), so
    a substring match among 100,000 rows is an index scan. One index over the one text
    costs an import less than one over the three columns: COPY of 100,000 subscribers
    took 3.8-4.2 s against 4.5-5.0 s (bench/import.py's rows). The migration
    (g16a_search_text_index) writes the same expression."""
    sep = _FieldSeparator()
    return (
        func.lower(Subscriber.email)
        .concat(sep)
        .concat(func.lower(Subscriber.name))
        .concat(sep)
        .concat(func.lower(Subscriber.organisation))
    )


# Created by the migration on PostgreSQL only; SQLite (embedded, small lists) scans.
Index(
    "ix_subscribers_search_text",
    search_text().label("search_text"),
    postgresql_using="gin",
    postgresql_ops={"search_text": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")


class ConsentEvent(Base):
    """Append-only record of what a subscriber agreed to, when, and how."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    # subscribed, confirmed, changed, paused, resumed, unsubscribed, erased, imported, revoked
    kind: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(30))  # form, link, one-click, import, admin
    wording_version: Mapped[str] = mapped_column(String(20))
    ip: Mapped[str | None] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # What else a reader of the ledger needs: the import's basis and file, a pause date.
    detail: Mapped[str] = mapped_column(String(300), default="", server_default="")


class Suppression(Base):
    """An address that must not be mailed, kept only as a hash so erasure leaves no address.

    The hash is keyed (HMAC under the suppression key, see :mod:`subscribers.suppression`),
    so the database alone cannot tell whether an address is listed; it stops imports
    bringing an address back.
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(30), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# An import's life: checked (dry run shown, waiting for "Import") -> queued -> running ->
# done | failed.
CHECKED, QUEUED, RUNNING, DONE, FAILED = "checked", "queued", "running", "done", "failed"


class ImportJob(Base):
    """One CSV import from the console: the file, its dry-run report, then its progress.

    The file is kept only until the import has run (or a day, unconfirmed): it holds
    personal data. ``report`` holds ``[line, email, outcome, message]`` rows of the dry run,
    replaced by those of the real import when it has run.
    """

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))  # the staff user name
    filename: Mapped[str] = mapped_column(String(200), default="")
    basis: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(100))
    skip_invalid: Mapped[bool] = mapped_column(Boolean, default=False)
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=CHECKED, index=True)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    dry_run_counts: Mapped[dict | None] = mapped_column(JSON)
    counts: Mapped[dict | None] = mapped_column(JSON)
    report: Mapped[list | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(String(500), default="")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The running worker's last sign of life (see subscribers.import_jobs.stalled).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
