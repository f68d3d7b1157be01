"""Taking posts out of the archive: a moderator's removal, and erasing a person.

* :func:`remove_post`: an approved post becomes ``removed`` (``removal="moderator"``): its
  message, text and attachments are deleted and its search entry goes; the thread keeps
  its place with "removed by a moderator". Deliveries not yet sent are skipped (the
  sender finds no message to send).
* :func:`erase_author`: every post of an address, in every group, loses its personal data:
  the author's name and address, the message as received, its text ("removed at the
  author's request") and attachments. Approved posts become ``removed``
  (``removal="erasure"``); held ones are ``discarded`` (nobody should decide on them
  now). The person's memberships are emptied too (address replaced, name cleared,
  ``removed``, their links revoked, the IPs of their group consent ledger cleared).

:func:`erase_person` is what every erasure request runs: the subscriber's own erasure
(:func:`subscribers.rights.erase`) and then this, for the same address.

The caller records who did it (the audit log) and commits. Functions never commit.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.groups import search
from mailer.groups.directory import GroupError
from mailer.groups.models import (
    APPROVED,
    BY_ERASURE,
    BY_MODERATOR,
    DISCARDED,
    HELD,
    REMOVED,
    Group,
    GroupAttachment,
    GroupConsentEvent,
    GroupMember,
    GroupPost,
)
from subscribers import rights
from subscribers.models import Subscriber


def _empty(session: Session, post: GroupPost) -> None:
    post.raw, post.body_text = b"", ""
    session.execute(delete(GroupAttachment).where(GroupAttachment.post_id == post.id))
    search.unindex(session, [post.id])


def remove_post(session: Session, group: Group, post_id: int, *, by: str, reason: str = "") -> GroupPost:
    """Remove approved post ``post_id`` of ``group`` from the archive (see the module)."""
    post = session.get(GroupPost, post_id)
    if post is None or post.group_id != group.id:
        raise GroupError(f"There is no post {post_id} in {group.slug}.")
    if post.status == REMOVED:
        raise GroupError(f"Post {post_id} was removed already.")
    if post.status != APPROVED:
        raise GroupError(f"Post {post_id} is not in the archive (it is {post.status}).")
    _empty(session, post)
    post.status, post.removal = REMOVED, BY_MODERATOR
    post.decided_at, post.decided_by = utcnow(), by[:120]
    post.decision_reason = " ".join((reason or "").split())[:500]
    session.flush()
    return post


def erase_author(session: Session, email: str) -> int:
    """Erase ``email``'s posts and memberships in every group (see the module); how many
    posts were changed."""
    key = (email or "").strip().lower()
    if not key:
        return 0
    posts = list(session.scalars(select(GroupPost).where(func.lower(GroupPost.author_email) == key)))
    ids = [post.id for post in posts]
    if ids:  # attachments and search entries of every post at once, not a query or two each
        session.execute(delete(GroupAttachment).where(GroupAttachment.post_id.in_(ids)))
        search.unindex(session, ids)
    for post in posts:
        post.raw, post.body_text = b"", ""
        post.author_name, post.author_email = "", ""
        if post.status in (APPROVED, REMOVED):
            post.status, post.removal = REMOVED, BY_ERASURE
        elif post.status == HELD:
            post.status, post.decided_by, post.decided_at = DISCARDED, "erasure", utcnow()
        post.decision_reason = ""
    for member in session.scalars(select(GroupMember).where(GroupMember.email_key == key)):
        member.email = member.email_key = f"erased-{member.id}@erased.invalid"
        member.name, member.status = "", REMOVED
        member.left_at = member.left_at or utcnow()
        member.token_version += 1
        session.execute(
            update(GroupConsentEvent).where(GroupConsentEvent.member_id == member.id).values(ip=None, detail="")
        )
    session.flush()
    return len(posts)


def erase_person(session: Session, sub: Subscriber, *, source: str = "link") -> int:
    """Erase a subscriber everywhere: their digest data (:func:`subscribers.rights.erase`)
    and their group posts and memberships; how many group posts were changed."""
    email = sub.email
    rights.erase(session, sub, source=source)
    return erase_author(session, email)
