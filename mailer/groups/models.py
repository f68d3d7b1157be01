"""The tables of groups: the group, its members and their consent ledger, sender rules,
posts (held or accepted) and the group delivery ledger.

Addresses are kept as given (normalised by :func:`mailer.validation.email_address`) with a
lower-cased ``email_key`` beside them: ``Priya@`` and ``priya@`` are one member, as they
are one subscriber.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.db import Base, utcnow

# Visibility of a group's archive (and whether members may post at all: announce-only).
PUBLIC, MEMBERS_ONLY, ANNOUNCE = "public", "members", "announce"
VISIBILITIES = (PUBLIC, MEMBERS_ONLY, ANNOUNCE)

# Posting policies. Non-members are always held; a trusted sender is never held for policy.
OPEN, MEMBERS_MODERATED, ALL_MODERATED, ANNOUNCE_ONLY = "open", "moderated", "all-moderated", "announce-only"
POLICIES = (OPEN, MEMBERS_MODERATED, ALL_MODERATED, ANNOUNCE_ONLY)

# Member roles, lowest first; owners and moderators are members too (they get the mail).
MEMBER, MODERATOR, OWNER = "member", "moderator", "owner"
ROLES = (MEMBER, MODERATOR, OWNER)

# Delivery modes a member chooses.
EVERY, DIGEST, WEB = "every", "digest", "web"
DELIVERY_MODES = (EVERY, DIGEST, WEB)

# Membership states: asked to join and not yet confirmed; in; left by themselves; removed.
JOIN_PENDING, ACTIVE, LEFT, REMOVED = "pending", "active", "left", "removed"

# Sender rules: trust (never held for the posting policy) or ban (dropped, never answered).
TRUST, BAN = "trust", "ban"

# Post states. Held posts wait for a moderator; approved ones are (being) delivered;
# rejected (with a reason, told to the sender), discarded (silently), expired (not
# decided in time, the sender told).
HELD, APPROVED, REJECTED, DISCARDED, EXPIRED = "held", "approved", "rejected", "discarded", "expired"
# An approved post taken out of the archive afterwards is ``REMOVED`` (the membership
# state's word, above); ``GroupPost.removal`` says why: a moderator removed it, or its
# author was erased. Its place in the thread stays, empty.
BY_MODERATOR, BY_ERASURE = "moderator", "erasure"


class Group(Base):
    """A mailing list at ``slug@`` the list domain."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(20), default=PUBLIC)
    posting_policy: Mapped[str] = mapped_column(String(20), default=OPEN)
    # Largest post accepted without a moderator's look; attachments (non-text parts) too.
    max_bytes: Mapped[int] = mapped_column(Integer, default=2_000_000)
    allow_attachments: Mapped[bool] = mapped_column(Boolean, default=True)
    # Across the network: the group's threads (public archive only) appear in the monthly
    # digest's "What networks are doing" for readers who chose ``topic_id`` (see
    # :mod:`mailer.groups.network`). Off until an owner or editor turns it on.
    share_with_digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")


class GroupMember(Base):
    """One address's membership of one group (kept after leaving, for the consent ledger)."""

    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_id", "email_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))  # email, lower-cased: the identity
    name: Mapped[str] = mapped_column(String(120), default="")
    role: Mapped[str] = mapped_column(String(20), default=MEMBER)
    delivery: Mapped[str] = mapped_column(String(20), default=EVERY)
    status: Mapped[str] = mapped_column(String(20), default=JOIN_PENDING, index=True)
    # "consent" (joined through the page, confirmed) or the owner's recorded basis.
    basis: Mapped[str] = mapped_column(String(40), default="consent")
    # Bumped to revoke every group link already sent to this member.
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    joined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    group: Mapped[Group] = relationship()


class GroupConsentEvent(Base):
    """Append-only record of how a member came into a group and left it, like the digest's
    ledger: requested, confirmed, added (with the owner's basis), delivery, left, removed."""

    __tablename__ = "group_consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("group_members.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(30))  # form, link, one-click, cli, email
    wording_version: Mapped[str] = mapped_column(String(20))
    ip: Mapped[str | None] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    detail: Mapped[str] = mapped_column(String(300), default="")


class GroupSender(Base):
    """A rule for mail from one address to one group: ``trust`` (a moderator approved and
    trusted it: never held for the posting policy) or ``ban`` (dropped, never answered)."""

    __tablename__ = "group_senders"
    __table_args__ = (UniqueConstraint("group_id", "email_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    email_key: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(10))
    by: Mapped[str] = mapped_column(String(120), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GroupPost(Base):
    """A message posted to a group that passed the loop, auto-reply and ban rules: held
    for a moderator or approved (and delivered). ``raw`` is the message as received.

    ``inbound_message_id`` ties a post to the receiver's ledger row it came from (unique:
    processing that row twice makes one post)."""

    __tablename__ = "group_posts"
    __table_args__ = (
        Index("ix_group_posts_group_status", "group_id", "status"),
        Index("ix_group_posts_group_thread", "group_id", "thread_id"),
        Index("ix_group_posts_group_message_id", "group_id", "message_id"),
        Index("ix_group_posts_group_subject_key", "group_id", "subject_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    inbound_message_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(20), default=HELD)
    author_email: Mapped[str] = mapped_column(String(320), default="")
    author_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    message_id: Mapped[str] = mapped_column(String(300), default="")
    in_reply_to: Mapped[str] = mapped_column(String(300), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    hold_reason: Mapped[str] = mapped_column(String(300), default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str] = mapped_column(String(120), default="")
    decision_reason: Mapped[str] = mapped_column(String(500), default="")
    # Threading (mailer.groups.threads): the root post's id (its own for a new thread),
    # and the normalised subject replies without references are matched on.
    thread_id: Mapped[int | None] = mapped_column(Integer)
    subject_key: Mapped[str] = mapped_column(String(300), default="")
    # The archive's text of an approved post (mailer.groups.archive): the plain text,
    # addresses masked; what search indexes. "" until the post is approved.
    body_text: Mapped[str] = mapped_column(Text, default="")
    # Why a removed post was removed (BY_MODERATOR, BY_ERASURE); "" otherwise.
    removal: Mapped[str] = mapped_column(String(20), default="")

    group: Mapped[Group] = relationship()


class GroupDigest(Base):
    """One group's daily digest for one day (in ``SCHEDULE_TIMEZONE``): unique, so a day's
    digest is made once whoever runs the job and how often. Its deliveries are rows of
    the group delivery ledger with ``digest_id`` set (see :mod:`mailer.groups.daily`)."""

    __tablename__ = "group_digests"
    __table_args__ = (UniqueConstraint("group_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    group: Mapped[Group] = relationship()


class GroupDelivery(Base):
    """The group delivery ledger: one row per post (or daily digest) and member, unique,
    so nobody gets a post or a day's digest twice. ``pending -> sending -> sent | failed |
    unknown`` or ``skipped``, as the digest's :class:`mailer.delivery.models.Delivery`.
    Exactly one of ``post_id`` and ``digest_id`` is set. ``claim`` and ``heartbeat_at``
    as the digest's: a ``sending`` row whose claim's heartbeat is stale belongs to a dead
    worker and is taken back by the keepers' sweep (:mod:`mailer.groups.sending`)."""

    __tablename__ = "group_deliveries"
    __table_args__ = (
        UniqueConstraint("post_id", "member_id"),
        UniqueConstraint("digest_id", "member_id"),
        Index("ix_group_deliveries_post_status", "post_id", "status"),
        CheckConstraint("(post_id IS NULL) <> (digest_id IS NULL)", name="post_or_digest"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("group_posts.id", ondelete="CASCADE"))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("group_digests.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("group_members.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class GroupAttachment(Base):
    """A file that came with an approved post, kept for the archive when it is no bigger
    than ``GROUP_ARCHIVE_ATTACHMENT_MAX_BYTES``; deleted with the post's content."""

    __tablename__ = "group_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("group_posts.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
