"""Erasing a person reaches the mail we received and wrote, not only the subscriber row.

:func:`erase_subscriber` is what every erasure calls (the reader's own link, the console,
``mailer subscribers erase``): :func:`mailer.groups.removal.erase_person` empties the subscriber and their group posts
and memberships, then
:func:`strip_inbound` empties every inbound ledger row still holding the address (a failed
message keeps its bytes for an operator; one not yet processed has them too). It returns
the address, so the caller removes the file outbox's emails that hold it
(:func:`mailer.mail.outbox.remove_messages_to`) once its transaction has committed: a
file is not part of a transaction, and an erasure that failed must not lose mail.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.groups.models import GroupMember, GroupPost
from mailer.groups.removal import erase_author, erase_person
from mailer.inbound.models import FAILED, RECEIVED, InboundMessage
from subscribers.models import Subscriber


def holds(raw: bytes, mail_from: str, address: str) -> bool:
    """Whether a message (its bytes or envelope sender) holds ``address``, ignoring case."""
    needle = address.strip().lower()
    return bool(needle) and (mail_from.strip().lower() == needle or needle.encode() in raw.lower())


def strip_inbound(session: Session, address: str) -> int:
    """Empty the bytes and sender of every inbound row holding ``address``. A row not yet
    processed is ended as failed ("erased"), so no handler runs on nothing. How many."""
    rows = session.execute(
        select(InboundMessage.id, InboundMessage.raw, InboundMessage.mail_from, InboundMessage.status).where(
            or_(InboundMessage.raw != b"", InboundMessage.mail_from != "")
        )
    ).all()
    ids = [r.id for r in rows if holds(r.raw or b"", r.mail_from or "", address)]
    if ids:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(ids))
            .values(raw=b"", mail_from="", size=0, outcome="erased with its sender's data")
        )
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(ids), InboundMessage.status == RECEIVED)
            .values(status=FAILED, error="erased before it was processed", processed_at=utcnow())
        )
    return len(ids)


def erase_subscriber(session: Session, sub: Subscriber, *, source: str) -> str:
    """Erase ``sub`` everywhere the database holds them; returns their address (for the
    caller's outbox clean-up after the commit)."""
    address = sub.email
    erase_person(session, sub, source=source)  # the digest and every group
    strip_inbound(session, address)
    return address


def group_traces(session: Session, address: str) -> bool:
    """Whether a group still holds ``address`` (a membership or a post by it)."""
    key = address.strip().lower()
    member = select(GroupMember.id).where(GroupMember.email_key == key).limit(1)
    post = select(GroupPost.id).where(func.lower(GroupPost.author_email) == key).limit(1)
    return session.scalar(member) is not None or session.scalar(post) is not None


def erase_group_person(session: Session, address: str) -> str:
    """Erase someone who is in groups but never subscribed to the digest (so no
    :class:`Subscriber` row to erase): their memberships and posts in every group and the
    inbound mail holding the address. Returns the address, as :func:`erase_subscriber`."""
    erase_author(session, address)
    strip_inbound(session, address)
    return address
