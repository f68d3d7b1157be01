"""A group's archive: who may read it, filing approved posts, and reading threads.

Visibility (:func:`can_read`), the one rule every archive page and search obeys:

* ``public``: anyone, logged in or not;
* ``members``: the group's active members (identified by their signed personal link,
  see :mod:`mailer.web.groups.archive`) and console staff whose role may moderate groups;
* ``announce``: an announce-only group's archive is public, like a newsletter's back
  issues: what it announces is meant to be read, and nobody else posts there.

Only approved posts appear. A post removed afterwards (:mod:`mailer.groups.removal`)
keeps its place in its thread with a note instead of its content ("removed by a
moderator", "removed at the author's request").

:func:`file_post` runs when a post becomes approved (by the chain or by a moderator): it
keeps the post's text (addresses masked, see :mod:`.bodies`) and its attachments up to
the size limit, and indexes it for search. Functions take a ``session``, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session, defer

from mailer.groups import bodies, search
from mailer.groups.models import (
    ACTIVE,
    APPROVED,
    BY_ERASURE,
    MEMBERS_ONLY,
    MODERATOR,
    OWNER,
    REMOVED,
    Group,
    GroupAttachment,
    GroupMember,
    GroupPost,
)

DEFAULT_ATTACHMENT_MAX_BYTES = 5_000_000
SHOWN = (APPROVED, REMOVED)  # the states a post has in the archive
REMOVED_NOTES = {BY_ERASURE: "This message was removed at the author's request."}
REMOVED_BY_MODERATOR = "This message was removed by a moderator."


@dataclass(frozen=True)
class Reader:
    """Who is reading: an active membership of *this* group, console staff allowed to
    moderate groups, or neither (anyone)."""

    member: GroupMember | None = None
    staff: bool = False


ANYONE = Reader()


def can_read(group: Group, reader: Reader) -> bool:
    if group.visibility != MEMBERS_ONLY:  # public, and announce-only (see above)
        return True
    return reader.staff or (reader.member is not None and _active_in(reader.member, group))


def can_moderate(group: Group, reader: Reader) -> bool:
    """Staff with the groups permission, or the group's own owners and moderators."""
    m = reader.member
    return reader.staff or (m is not None and _active_in(m, group) and m.role in (MODERATOR, OWNER))


def _active_in(member: GroupMember, group: Group) -> bool:
    return member.group_id == group.id and member.status == ACTIVE


def file_post(session: Session, post: GroupPost, *, attachment_max_bytes: int = DEFAULT_ATTACHMENT_MAX_BYTES) -> None:
    """Keep an approved post's text and attachments for the archive and index it (again:
    filing twice replaces what the first time kept). An attachment over the limit is
    listed with its name and size but its bytes are not kept."""
    msg = bodies.parse(post.raw)
    post.body_text = bodies.mask_addresses(bodies.plain_text(msg))
    session.execute(delete(GroupAttachment).where(GroupAttachment.post_id == post.id))
    for found in bodies.attachments(msg):
        kept = found.data if len(found.data) <= attachment_max_bytes else b""
        session.add(
            GroupAttachment(
                post_id=post.id,
                filename=found.filename,
                content_type=found.content_type,
                size=len(found.data),
                data=kept,
            )
        )
    session.flush()
    search.index(session, post)


@dataclass(frozen=True)
class ThreadSummary:
    thread_id: int
    subject: str
    started_at: datetime
    last_at: datetime
    posts: int
    started_by: str


def author_shown(name: str) -> str:
    """The author as the archive names them: their name, never their address."""
    return bodies.mask_addresses(name) or "A member of the group"


def threads(session: Session, group: Group, *, page: int = 1, per_page: int = 25) -> tuple[list[ThreadSummary], int]:
    """One page of the group's threads, latest activity first, and how many there are.
    A thread is listed while at least one of its posts is approved."""
    approved = func.sum(case((GroupPost.status == APPROVED, 1), else_=0))
    grouped = (
        select(
            GroupPost.thread_id,
            func.min(GroupPost.received_at).label("started"),
            func.max(GroupPost.received_at).label("last"),
            func.count().label("posts"),
        )
        .where(GroupPost.group_id == group.id, GroupPost.status.in_(SHOWN))
        .group_by(GroupPost.thread_id)
        .having(approved > 0)
    )
    total = session.scalar(select(func.count()).select_from(grouped.subquery())) or 0
    rows = session.execute(
        grouped.order_by(func.max(GroupPost.received_at).desc(), GroupPost.thread_id.desc())
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    ).all()
    firsts: dict[int, tuple] = {}
    if rows:
        for first in session.execute(
            select(GroupPost.thread_id, GroupPost.subject, GroupPost.author_name)
            .where(GroupPost.thread_id.in_([r.thread_id for r in rows]), GroupPost.status == APPROVED)
            .order_by(GroupPost.received_at.desc(), GroupPost.id.desc())
        ):
            firsts[first.thread_id] = first  # the earliest approved post of each, last written
    return [
        ThreadSummary(
            r.thread_id,
            bodies.mask_addresses(firsts[r.thread_id].subject) or "(no subject)",
            r.started,
            r.last,
            r.posts,
            author_shown(firsts[r.thread_id].author_name),
        )
        for r in rows
        if r.thread_id in firsts
    ], total


@dataclass(frozen=True)
class AttachmentView:
    id: int
    filename: str
    size: int
    kept: bool


@dataclass(frozen=True)
class PostView:
    """A post as the archive shows it: text only, addresses masked, quotes apart."""

    id: int
    thread_id: int
    subject: str
    author: str
    at: datetime
    new_text: str
    quoted: str
    removed: str  # the note shown instead of a removed post's content; "" if not removed
    attachments: list[AttachmentView] = field(default_factory=list)


def _files(session: Session, post_ids: list[int]) -> dict[int, list[AttachmentView]]:
    """The attachments of these posts, without reading their bytes."""
    found: dict[int, list[AttachmentView]] = {}
    if post_ids:
        for a in session.execute(
            select(
                GroupAttachment.id,
                GroupAttachment.post_id,
                GroupAttachment.filename,
                GroupAttachment.size,
                func.length(GroupAttachment.data).label("kept"),
            )
            .where(GroupAttachment.post_id.in_(post_ids))
            .order_by(GroupAttachment.id)
        ):
            found.setdefault(a.post_id, []).append(AttachmentView(a.id, a.filename, a.size, a.size == a.kept))
    return found


def view(session: Session, post: GroupPost, files: list[AttachmentView] | None = None) -> PostView:
    """``post`` as the archive shows it (``files``: its attachments, when the caller
    fetched them for many posts at once)."""
    if post.status == REMOVED:
        note = REMOVED_NOTES.get(post.removal, REMOVED_BY_MODERATOR)
        return PostView(post.id, post.thread_id or post.id, "", "", post.received_at, "", "", note)
    split = bodies.split_quoted(post.body_text)
    if files is None:
        files = _files(session, [post.id]).get(post.id, [])
    return PostView(
        post.id,
        post.thread_id or post.id,
        bodies.mask_addresses(post.subject) or "(no subject)",
        author_shown(post.author_name),
        post.received_at,
        split.new,
        split.quoted,
        "",
        files,
    )


def archived_post(session: Session, group: Group, post_id: int) -> GroupPost | None:
    """The post ``post_id`` if it is in ``group``'s archive (approved or removed)."""
    post = session.get(GroupPost, post_id)
    if post is None or post.group_id != group.id or post.status not in SHOWN:
        return None
    return post


THREAD_LIMIT = 500  # posts shown on one thread page


def _in_thread(group: Group, thread_id: int):
    return GroupPost.group_id == group.id, GroupPost.thread_id == thread_id, GroupPost.status.in_(SHOWN)


def thread(session: Session, group: Group, thread_id: int, *, limit: int = THREAD_LIMIT) -> list[PostView]:
    """The thread's archived posts in the order they came ([] if it has none approved)."""
    posts = list(
        session.scalars(
            select(GroupPost)
            .options(defer(GroupPost.raw))  # the archive shows the filed text, never reads the message
            .where(*_in_thread(group, thread_id))
            .order_by(GroupPost.received_at, GroupPost.id)
            .limit(limit)
        )
    )
    if not any(p.status == APPROVED for p in posts):
        return []
    files = _files(session, [p.id for p in posts])
    return [view(session, p, files.get(p.id, [])) for p in posts]


def thread_size(session: Session, group: Group, thread_id: int) -> int:
    """How many posts :func:`thread` shows, counted rather than built."""
    counts = dict(
        session.execute(
            select(GroupPost.status, func.count()).where(*_in_thread(group, thread_id)).group_by(GroupPost.status)
        ).all()
    )
    return min(sum(counts.values()), THREAD_LIMIT) if counts.get(APPROVED) else 0


def search_posts(
    session: Session, group: Group, reader: Reader, query: str, *, page: int = 1, per_page: int = 20
) -> tuple[list[PostView], int]:
    """One page of the group's approved posts matching ``query``, and how many match;
    nothing for a reader who may not read the group."""
    if not can_read(group, reader):
        return [], 0
    ids, total = search.search(session, group.id, query, limit=per_page, offset=(max(page, 1) - 1) * per_page)
    query = select(GroupPost).options(defer(GroupPost.raw)).where(GroupPost.id.in_(ids))
    posts = {p.id: p for p in session.scalars(query)} if ids else {}
    files = _files(session, ids)
    return [view(session, posts[i], files.get(i, [])) for i in ids if i in posts], total


def attachment(session: Session, group: Group, attachment_id: int) -> GroupAttachment | None:
    """A kept attachment of an approved post of ``group``."""
    found = session.get(GroupAttachment, attachment_id)
    if found is None or not found.data:
        return None
    post = session.get(GroupPost, found.post_id)
    return found if post is not None and post.group_id == group.id and post.status == APPROVED else None
