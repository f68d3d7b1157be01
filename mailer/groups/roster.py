"""What the console's group screens list: groups with their member and held-post counts,
a group's members (searched, one page at a time) and its sender rules.

Read-only queries, paginated in the database so a group of 100,000 members lists as fast
as one of ten. Changes are :mod:`.directory`'s, :mod:`.service`'s and :mod:`.posting`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.db import like_escaped
from mailer.groups.models import ACTIVE, HELD, Group, GroupMember, GroupPost, GroupSender
from mailer.paging import Page, counted


@dataclass(frozen=True)
class GroupRow:
    group: Group
    members: int  # active
    held: int


def groups_page(session: Session, *, page: int = 1, per_page: int = 25) -> Page:
    """Groups by slug, each with its active members and held posts counted."""
    total, page = counted(session, select(Group.id), page, per_page)
    members = (
        select(func.count(GroupMember.id))
        .where(GroupMember.group_id == Group.id, GroupMember.status == ACTIVE)
        .scalar_subquery()
    )
    held = select(func.count(GroupPost.id)).where(GroupPost.group_id == Group.id, GroupPost.status == HELD)
    rows = session.execute(
        select(Group, members, held.scalar_subquery())
        .order_by(Group.slug)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return Page([GroupRow(g, m, h) for g, m, h in rows], total, page, per_page)


def held_count(session: Session, group: Group) -> int:
    return (
        session.scalar(select(func.count(GroupPost.id)).where(GroupPost.group_id == group.id, GroupPost.status == HELD))
        or 0
    )


def members_page(
    session: Session, group: Group, *, search: str = "", status: str = ACTIVE, page: int = 1, per_page: int = 50
) -> Page:
    """``group``'s memberships (``status``; empty: every state) whose address or name
    contains ``search`` (case-insensitive), by address."""
    q = select(GroupMember).where(GroupMember.group_id == group.id)
    if status:
        q = q.where(GroupMember.status == status)
    term = " ".join(search.split())[:100].lower()
    if term:
        like = f"%{like_escaped(term)}%"
        q = q.where(
            GroupMember.email_key.like(like, escape="\\") | func.lower(GroupMember.name).like(like, escape="\\")
        )
    total, page = counted(session, q, page, per_page)
    rows = session.scalars(q.order_by(GroupMember.email_key).offset((page - 1) * per_page).limit(per_page))
    return Page(list(rows), total, page, per_page)


def senders_page(session: Session, group: Group, *, page: int = 1, per_page: int = 50) -> Page:
    """``group``'s sender rules (trust, ban), newest first."""
    q = select(GroupSender).where(GroupSender.group_id == group.id)
    total, page = counted(session, q, page, per_page)
    rows = session.scalars(
        q.order_by(GroupSender.at.desc(), GroupSender.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return Page(list(rows), total, page, per_page)


def rules_for(session: Session, group: Group, email_keys: list[str]) -> dict[str, str]:
    """The sender rule of each address that has one (for a page of members)."""
    if not email_keys:
        return {}
    rows = session.execute(
        select(GroupSender.email_key, GroupSender.action).where(
            GroupSender.group_id == group.id, GroupSender.email_key.in_(email_keys)
        )
    )
    return dict(rows.all())
