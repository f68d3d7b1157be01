"""Across the network: the threads groups share with the monthly digest.

A group shares when an owner or editor turns ``share_with_digest`` on; it must have a
public archive (the digest links to its threads, and a members-only archive's threads
never leave the group) and a digest topic (readers who chose that topic see its threads
in the digest's "What networks are doing" section). An edition lists the threads with
posts approved since the previous edition was built (or, with none sent, since the start
of the month before its period, as its items reach back), up to when it is built: each
with its group, subject, a link to the thread in the archive and its number of replies.

:func:`freeze` writes them onto the edition when it is built (plain data, through
:func:`mailer.digest.editions.set_networks`), as the edition's items are frozen: every
copy, preview and the archive show the same list. One group or thread that cannot be
read is logged and left out; it never stops the digest.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, time, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.digest.editions import find_edition, parse_period, previous_period_start, set_networks
from mailer.digest.models import DRAFT, Edition
from mailer.groups.daily import approved_between
from mailer.groups.links import GroupLinks
from mailer.groups.models import APPROVED, PUBLIC, Group, GroupPost
from mailer.settings import Settings

log = logging.getLogger(__name__)

THREADS_PER_GROUP = 5  # the month's most active threads of each group


def sharing_groups(session: Session) -> list[Group]:
    """Groups that share with the digest and may: public archive, a topic."""
    return list(
        session.scalars(
            select(Group)
            .where(Group.share_with_digest.is_(True), Group.visibility == PUBLIC, Group.topic_id.is_not(None))
            .order_by(Group.name, Group.id)
        )
    )


def group_threads(session: Session, group: Group, start: datetime, end: datetime, links: GroupLinks) -> list[dict]:
    """``group``'s threads with posts approved in [start, end), most active first."""
    # Only each post's thread (its root's id) leaves the database, never the message bytes.
    roots = session.scalars(
        select(func.coalesce(GroupPost.thread_id, GroupPost.id))
        .where(*approved_between(group, start, end))
        .order_by(GroupPost.decided_at, GroupPost.id)
        .limit(2000)
    )
    counts = Counter(roots)
    busiest = [root for root, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:THREADS_PER_GROUP]]
    # Replies: every approved post of the thread but its first, whenever it came.
    sizes = dict(
        session.execute(
            select(GroupPost.thread_id, func.count(GroupPost.id))
            .where(GroupPost.thread_id.in_(busiest), GroupPost.status == APPROVED)
            .group_by(GroupPost.thread_id)
        ).all()
    )
    out = []
    for root_id in busiest:
        try:
            root = session.get(GroupPost, root_id)
            subject = " ".join(((root.subject if root is not None else "") or "").split()) or "(no subject)"
            out.append(
                {
                    "group": group.name,
                    "subject": subject,
                    "url": links.thread(group.slug, root_id),
                    "replies": max(
                        0, sizes.get(root_id, 1) - (1 if root is not None and root.status == APPROVED else 0)
                    ),
                    "topic_id": group.topic_id,
                }
            )
        except Exception:  # noqa: BLE001 - one thread we cannot read is left out, never the digest
            log.exception("group %s: thread %s left out of the digest's networks section", group.slug, root_id)
    return out


def window(session: Session, edition: Edition) -> tuple[datetime, datetime]:
    """[since the previous edition was built, or the start of the month before the
    period; until now, or the period's end]."""
    first, after = parse_period(edition.period)
    before = previous_period_start(first)
    earlier = find_edition(session, f"{before:%Y-%m}")
    start = datetime.combine(before, time.min, tzinfo=timezone.utc)
    if earlier is not None and earlier.status != DRAFT and earlier.built_at is not None:
        built = earlier.built_at if earlier.built_at.tzinfo else earlier.built_at.replace(tzinfo=timezone.utc)
        start = max(start, built)
    end = min(utcnow(), datetime.combine(after, time.min, tzinfo=timezone.utc))
    return start, end


def shared_threads(session: Session, edition: Edition, settings: Settings) -> list[dict]:
    """The shared threads of every sharing group for ``edition`` (see :func:`window`)."""
    start, end = window(session, edition)
    links = GroupLinks(settings)
    out: list[dict] = []
    for group in sharing_groups(session):
        try:
            with session.begin_nested():
                out.extend(group_threads(session, group, start, end, links))
        except Exception:  # noqa: BLE001 - one group we cannot read is left out, never the digest
            log.exception("group %s left out of the digest's networks section", group.slug)
    return out


def freeze(session: Session, edition: Edition, settings: Settings) -> int:
    """Write the shared threads onto ``edition`` (a draft being built); how many."""
    return set_networks(session, edition, shared_threads(session, edition, settings))
