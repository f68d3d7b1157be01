"""The one moderation inbox: every kind of held thing, listed together, oldest first.

A *source* is one kind of held thing: partner items (:class:`ItemSource`) and posts
held for a group's moderator (:class:`PostSource`). A source gives the inbox two
things: a SELECT of ``(id, received_at)`` for what matches the filters (or None when the
filters rule its whole kind out, say a partner filter for group posts), and, for the
page of ids the inbox picked, one :class:`Entry` per id to show. The inbox combines the
sources' SELECTs with UNION ALL, so sorting, counting and paging happen in the database
whatever the number of sources. Claims (:mod:`mailer.staff.claims`) are keyed by the
source's ``kind``, so they work for any source too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from mailer.content.models import ITEM_KINDS, ITEM_STATUSES, SUBMITTED, Item
from mailer.content.review import ItemFilter, filtered_item_ids
from mailer.groups.models import APPROVED, HELD, REJECTED, Group, GroupPost
from mailer.paging import Paged, clamp
from mailer.staff import claims
from mailer.staff.claims import Holder


@dataclass(frozen=True)
class InboxFilter:
    """What the moderator asked to see. ``status`` is an item status (``submitted`` is
    "waiting"; a source with other words for it maps them); empty matches everything."""

    source: str = ""
    status: str = SUBMITTED
    partner_id: int | None = None
    item_kind: str = ""
    topic_id: int | None = None
    group_id: int | None = None


@dataclass(frozen=True)
class Entry:
    """One held thing as the inbox lists it (plain text; the page escapes it)."""

    kind: str  # the source's kind, e.g. "item"
    id: int
    title: str
    origin: str  # who it came from: a partner, a group
    category: str  # e.g. "News", "Event"
    status: str
    received_at: datetime
    topics: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # "featured", "edited", "via feed"...
    holder: Holder | None = None  # a live claim, filled in by the inbox
    sender: str = ""  # the address it came from, where staff should see it (group posts)
    reason: str = ""  # why it was held (group posts)


class Source(Protocol):
    kind: str
    label: str

    def matching(self, f: InboxFilter): ...  # a SELECT of (id, received_at), or None

    def entries(self, session: Session, ids: list[int]) -> dict[int, Entry]: ...


class ItemSource:
    """Partner items (form, feed, API)."""

    kind = "item"
    label = "Partner items"

    def matching(self, f: InboxFilter):
        if f.group_id is not None:
            return None
        if f.status and f.status not in ITEM_STATUSES:
            return None
        if f.item_kind and f.item_kind not in ITEM_KINDS:
            return None
        q = filtered_item_ids(ItemFilter(f.status, f.partner_id, f.item_kind, f.topic_id)).subquery()
        return select(q.c.id.label("id"), q.c.submitted_at.label("received_at"))

    def entries(self, session: Session, ids: list[int]) -> dict[int, Entry]:
        out = {}
        for item in session.scalars(select(Item).where(Item.id.in_(ids))).unique():
            flags = [f"via {item.source}"]
            if item.featured:
                flags.append("featured")
            if item.original:
                flags.append("edited")
            out[item.id] = Entry(
                kind=self.kind,
                id=item.id,
                title=item.title,
                origin=item.partner.name,
                category=ITEM_KINDS.get(item.kind, item.kind),
                status=item.status,
                received_at=item.submitted_at,
                topics=[t.name for t in item.topics],
                flags=flags,
            )
        return out


# The inbox's statuses (an item's words) as a group post's: a held post is "waiting".
POST_STATUS = {SUBMITTED: HELD, "approved": APPROVED, "rejected": REJECTED}


class PostSource:
    """Posts a group's moderation chain held for a moderator."""

    kind = "post"
    label = "Group posts"

    def matching(self, f: InboxFilter):
        if f.partner_id is not None or f.item_kind or f.topic_id is not None:
            return None  # partner, item kind and topic are things only items have
        q = select(GroupPost.id.label("id"), GroupPost.received_at.label("received_at"))
        if f.status:
            if f.status not in POST_STATUS:
                return None
            q = q.where(GroupPost.status == POST_STATUS[f.status])
        if f.group_id is not None:
            q = q.where(GroupPost.group_id == f.group_id)
        return q

    def entries(self, session: Session, ids: list[int]) -> dict[int, Entry]:
        out = {}
        rows = session.execute(
            select(GroupPost, Group.name).join(Group, Group.id == GroupPost.group_id).where(GroupPost.id.in_(ids))
        )
        for post, group_name in rows:
            out[post.id] = Entry(
                kind=self.kind,
                id=post.id,
                title=post.subject or "(no subject)",
                origin=group_name,
                category="Group post",
                status=post.status,
                received_at=post.received_at,
                sender=post.author_email or "(no usable address)",
                reason=post.hold_reason,
            )
        return out


SOURCES: dict[str, Source] = {s.kind: s for s in (ItemSource(), PostSource())}


@dataclass(frozen=True)
class InboxPage(Paged):
    entries: list[Entry]
    total: int
    page: int
    per_page: int


def search(session: Session, f: InboxFilter, *, now: datetime, page: int = 1, per_page: int = 25) -> InboxPage:
    """One page of held things matching ``f`` across the sources, oldest first, each with
    its live claim (if any)."""
    selects = []
    for source in SOURCES.values():
        if f.source and f.source != source.kind:
            continue
        q = source.matching(f)
        if q is not None:
            sub = q.subquery()
            selects.append(select(literal(source.kind).label("kind"), sub.c.id, sub.c.received_at))
    if not selects:
        return InboxPage([], 0, 1, per_page)
    everything = (union_all(*selects) if len(selects) > 1 else selects[0]).subquery()
    total = session.scalar(select(func.count()).select_from(everything)) or 0
    page = clamp(page, total, per_page)
    rows = session.execute(
        select(everything.c.kind, everything.c.id)
        .order_by(everything.c.received_at, everything.c.kind, everything.c.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    wanted: dict[str, list[int]] = {}
    for kind, ident in rows:
        wanted.setdefault(kind, []).append(ident)
    found: dict[tuple[str, int], Entry] = {}
    for kind, ids in wanted.items():
        holders = claims.current_many(session, kind, ids, now)
        for ident, entry in SOURCES[kind].entries(session, ids).items():
            found[(kind, ident)] = _with_holder(entry, holders.get(ident))
    entries = [found[(k, i)] for k, i in rows if (k, i) in found]
    return InboxPage(entries, total, page, per_page)


def _with_holder(entry: Entry, holder: Holder | None) -> Entry:
    if holder is None:
        return entry
    return Entry(**{**entry.__dict__, "holder": holder})


def waiting(session: Session) -> int:
    """How many things wait for a moderator, over every source (the dashboard's figure)."""
    total = 0
    for source in SOURCES.values():
        q = source.matching(InboxFilter())
        if q is not None:
            total += session.scalar(select(func.count()).select_from(q.subquery())) or 0
    return total
