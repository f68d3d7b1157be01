"""Mail to a group: run the moderation chain, keep what a person sent, and the moderators'
decisions on held posts.

:func:`receive` is called by the inbound route for group addresses (in the same
transaction that claims the receiver's ledger row, so a message is handled once). It
returns a :class:`Received` saying what happened: dropped (loop, automatic mail, banned:
nothing stored but the receiver's outcome), held, or accepted (the caller enqueues its
delivery after the commit). Moderators' decisions: :func:`approve` (optionally trusting the
sender from then on), :func:`reject` (the sender is told why), :func:`discard` (silently);
:func:`expire_held` ends posts nobody decided within ``GROUP_HOLD_DAYS`` and tells their
senders. Functions take a ``session`` and never commit.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.groups import archive, chain, threads
from mailer.groups.copies import author_of, decoded
from mailer.groups.directory import GroupError
from mailer.groups.models import (
    ACTIVE,
    APPROVED,
    BAN,
    DISCARDED,
    EXPIRED,
    HELD,
    REJECTED,
    TRUST,
    Group,
    GroupMember,
    GroupPost,
    GroupSender,
)
from mailer.groups.service import find_member

_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")


@dataclass(frozen=True)
class Received:
    action: str  # chain.ACCEPT, chain.HOLD or chain.DROP
    rule: str
    reason: str
    post_id: int | None  # the stored post (held or accepted), None when dropped

    @property
    def outcome(self) -> str:
        """One line for the receiver's ledger."""
        what = {chain.ACCEPT: "accepted", chain.HOLD: "held", chain.DROP: "dropped"}[self.action]
        post = f" as post {self.post_id}" if self.post_id else ""
        return f"{what}{post} ({self.rule}: {self.reason})"


def sender_rule(session: Session, group: Group, email: str) -> str | None:
    """``trust``, ``ban`` or None for mail from ``email`` to ``group``."""
    return session.scalar(
        select(GroupSender.action).where(GroupSender.group_id == group.id, GroupSender.email_key == email.lower())
    )


def set_sender_rule(session: Session, group: Group, email: str, action: str | None, *, by: str = "") -> None:
    """Trust or ban ``email`` in ``group`` (None: neither)."""
    row = session.scalar(
        select(GroupSender).where(GroupSender.group_id == group.id, GroupSender.email_key == email.strip().lower())
    )
    if action is None:
        if row is not None:
            session.delete(row)
        return
    if action not in (TRUST, BAN):
        raise ValueError(f"unknown sender rule {action!r}")
    if row is None:
        session.add(GroupSender(group_id=group.id, email_key=email.strip().lower(), action=action, by=by[:120]))
    else:
        row.action, row.by, row.at = action, by[:120], utcnow()
    session.flush()


def _first_id(value) -> str:
    """The first ``<id@host>`` in a header value ("" if none)."""
    found = _MESSAGE_ID.search(str(value or "")[:600])
    return found.group(0) if found else ""


def _message_id(msg: Message, domain: str) -> str:
    return _first_id(msg.get("Message-ID")) or f"<{secrets.token_hex(16)}@{domain}>"


def receive(
    session: Session,
    group: Group,
    msg: Message,
    raw: bytes,
    mail_from: str,
    *,
    list_domain: str,
    max_recipients: int,
    inbound_message_id: int | None = None,
    attachment_max_bytes: int = archive.DEFAULT_ATTACHMENT_MAX_BYTES,
) -> Received:
    """Run the moderation chain on a message sent to ``group`` and store it unless dropped.

    ``msg`` was parsed by the receiver (:func:`mailer.inbound.parse.parse`), so it has a
    header section and a ``From:``. Processing the same inbound row twice finds the post
    made the first time. An accepted post is filed in the archive at once
    (:func:`mailer.groups.archive.file_post`, attachments up to ``attachment_max_bytes``).
    """
    if inbound_message_id is not None:
        done = session.scalar(select(GroupPost).where(GroupPost.inbound_message_id == inbound_message_id))
        if done is not None:
            return Received(chain.ACCEPT if done.status == APPROVED else chain.HOLD, "again", "already stored", done.id)
    author_name, author = author_of(msg.get("From", ""))
    member = find_member(session, group, author) if author else None
    if member is not None and member.status != ACTIVE:
        member = None
    submission = chain.Submission(
        group=group,
        message=msg,
        raw=raw,
        mail_from=mail_from,
        author=author,
        member=member,
        sender_rule=sender_rule(session, group, author) if author else None,
        loop_markers=chain.LoopMarkers(list_domain),
        max_recipients=max_recipients,
    )
    try:
        verdict = chain.run(submission)
    except Exception as err:  # a message the checks cannot even walk: a person looks at it
        verdict = chain.Verdict(chain.HOLD, "content", f"could not be checked ({type(err).__name__})")
    if verdict.action == chain.DROP:
        return Received(verdict.action, verdict.rule, verdict.reason, None)
    post = GroupPost(
        group_id=group.id,
        inbound_message_id=inbound_message_id,
        status=APPROVED if verdict.action == chain.ACCEPT else HELD,
        author_email=author[:320],
        author_name=author_name,
        subject=decoded(msg.get("Subject", "")),
        message_id=_message_id(msg, list_domain),
        in_reply_to=_first_id(msg.get("In-Reply-To")),
        size=len(raw),
        raw=raw,
        hold_reason="" if verdict.action == chain.ACCEPT else f"{verdict.rule}: {verdict.reason}"[:300],
        decided_at=utcnow() if verdict.action == chain.ACCEPT else None,
        decided_by="chain" if verdict.action == chain.ACCEPT else "",
    )
    session.add(post)
    session.flush()
    threads.assign(session, post, msg)
    session.flush()
    if post.status == APPROVED:
        archive.file_post(session, post, attachment_max_bytes=attachment_max_bytes)
    return Received(verdict.action, verdict.rule, verdict.reason, post.id)


def held_posts(session: Session, group: Group) -> list[GroupPost]:
    """The group's held posts, oldest first."""
    return list(
        session.scalars(
            select(GroupPost)
            .where(GroupPost.group_id == group.id, GroupPost.status == HELD)
            .order_by(GroupPost.received_at, GroupPost.id)
        )
    )


def _held(session: Session, post_id: int, group: Group | None = None) -> GroupPost:
    post = session.get(GroupPost, post_id)
    if post is None or (group is not None and post.group_id != group.id):
        raise GroupError(f"There is no post {post_id}" + (f" in {group.slug}." if group else "."))
    if post.status != HELD:
        raise GroupError(f"Post {post_id} is not held (it was {post.status}).")
    return post


def _decide(session: Session, post: GroupPost, status: str, by: str, reason: str = "") -> None:
    """Move a held post to ``status``, once: two moderators deciding at the same moment
    cannot both win (the second is told it was decided already)."""
    moved = session.execute(
        update(GroupPost)
        .where(GroupPost.id == post.id, GroupPost.status == HELD)
        .values(status=status, decided_at=utcnow(), decided_by=by[:120], decision_reason=reason[:500])
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        raise GroupError(f"Post {post.id} was decided already by someone else.")
    session.refresh(post)


def approve(
    session: Session,
    post_id: int,
    *,
    by: str,
    trust: bool = False,
    group: Group | None = None,
    attachment_max_bytes: int = archive.DEFAULT_ATTACHMENT_MAX_BYTES,
) -> GroupPost:
    """Approve a held post and file it in the archive (the caller enqueues its delivery
    after the commit); with ``trust``, the sender's later posts to this group are accepted
    without a hold."""
    post = _held(session, post_id, group)
    _decide(session, post, APPROVED, by)
    archive.file_post(session, post, attachment_max_bytes=attachment_max_bytes)
    if trust and post.author_email:
        set_sender_rule(session, post.group, post.author_email, TRUST, by=by)
    return post


def reject(session: Session, post_id: int, *, by: str, reason: str, group: Group | None = None) -> GroupPost:
    """Reject a held post; its sender is told ``reason`` (the caller sends the notice).
    The message itself is not kept."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise GroupError("Say why the post is rejected: the sender is told.")
    post = _held(session, post_id, group)
    _decide(session, post, REJECTED, by, reason)
    post.raw = b""
    return post


def discard(session: Session, post_id: int, *, by: str, ban: bool = False, group: Group | None = None) -> GroupPost:
    """Discard a held post silently (spam); with ``ban``, drop the sender's later mail too."""
    post = _held(session, post_id, group)
    _decide(session, post, DISCARDED, by)
    post.raw = b""
    if ban and post.author_email:
        set_sender_rule(session, post.group, post.author_email, BAN, by=by)
    return post


def expire_held(session: Session, days: int, *, now: datetime | None = None) -> list[GroupPost]:
    """Posts held longer than ``days`` become ``expired`` (their bytes emptied); the caller
    tells their senders. Returns them."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    posts = list(session.scalars(select(GroupPost).where(GroupPost.status == HELD, GroupPost.received_at < cutoff)))
    expired = []
    for post in posts:
        try:
            _decide(session, post, EXPIRED, "expiry", f"not decided within {days} days")
        except GroupError:
            continue  # a moderator decided it just now
        post.raw = b""
        expired.append(post)
    return expired


def is_member_post(session: Session, post: GroupPost) -> GroupMember | None:
    """The author's active membership of the post's group, if any."""
    member = find_member(session, post.group, post.author_email) if post.author_email else None
    return member if member is not None and member.status == ACTIVE else None


def excerpt(post: GroupPost, limit: int = 3000) -> str:
    """The start of a post's plain text, for a moderator to judge it (shown as text,
    never as markup); a note when it has none."""
    if not post.raw:
        return "(the message is no longer kept)"
    try:
        msg = message_from_bytes(post.raw, policy=policy.compat32)
        for n, part in enumerate(msg.walk()):
            if n > 100:
                break
            if part.get_content_type() == "text/plain" and not part.get_filename():
                payload = part.get_payload(decode=True) or b""
                charset = part.get_content_charset() or "utf-8"
                try:
                    text = payload.decode(charset, "replace")
                except LookupError:  # a charset Python does not know
                    text = payload.decode("utf-8", "replace")
                text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text.replace("\r\n", "\n"))
                return text[:limit] + ("\n[...]" if len(text) > limit else "")
    except Exception:  # a structure the parser cannot walk: the moderator sees the reason only
        return "(the message could not be read as text)"
    return "(no plain-text part: HTML or attachments only)"
