"""The groups themselves: create, change, find and list them; their addresses.

A group lives at ``slug@`` the list domain (``LIST_DOMAIN``). Slugs are lower-case
letters, digits and single hyphens; the service's own mailboxes (the unsubscribe and
bounce local parts, ``MAIL_FROM``'s, the mail system's) can never be a group's.
Functions take a ``Session`` and never commit. Memberships are :mod:`.service`'s.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.content.models import Topic
from mailer.groups.models import (
    ACTIVE,
    ANNOUNCE,
    ANNOUNCE_ONLY,
    OPEN,
    POLICIES,
    PUBLIC,
    VISIBILITIES,
    Group,
    GroupMember,
)
from mailer.validation import InvalidInput, clean_text

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
# Local parts a group may never take: mail systems' own and ours (set per process, see
# reserved_locals()).
ALWAYS_RESERVED = frozenset({"postmaster", "abuse", "mailer-daemon", "root", "hostmaster", "webmaster", "noreply"})


class GroupError(Exception):
    """A request about groups that cannot be done; the text is safe to show."""


def reserved_locals(settings) -> frozenset[str]:
    """Local parts that are ours already at the list domain: the unsubscribe and bounce
    mailboxes and MAIL_FROM's own, plus the mail system's."""
    from_local = settings.mail_from.rpartition("<")[2].rstrip(">").partition("@")[0].lower()
    return ALWAYS_RESERVED | {
        settings.unsubscribe_mailto.partition("@")[0].lower(),
        settings.delivery.bounce_local.lower(),
        from_local,
    }


def address_of(group: Group, list_domain: str) -> str:
    """The group's posting address."""
    return f"{group.slug}@{list_domain}"


def create_group(
    session: Session,
    slug: str,
    name: str,
    *,
    reserved: frozenset[str] = ALWAYS_RESERVED,
    description: str = "",
    visibility: str = "public",
    policy: str | None = None,
    max_bytes: int = 2_000_000,
    allow_attachments: bool = True,
    topic: str | None = None,
    share_with_digest: bool = False,
    by: str = "",
) -> Group:
    """A new group. Its posting policy defaults to members posting freely (announce-only
    for an announce-only group); non-members are always held."""
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug) or "--" in slug:
        raise InvalidInput("slug", "must be 1-60 lower-case letters, digits and single hyphens (e.g. bme-network).")
    if slug in reserved or slug.startswith(tuple(f"{r}+" for r in reserved)):
        raise InvalidInput("slug", f"{slug}@ is one of the service's own addresses; choose another.")
    name = clean_text("name", name, 120)
    if not name:
        raise InvalidInput("name", "is required.")
    if visibility not in VISIBILITIES:
        raise InvalidInput("visibility", f"must be one of {', '.join(VISIBILITIES)}.")
    policy = policy or (ANNOUNCE_ONLY if visibility == ANNOUNCE else OPEN)
    if policy not in POLICIES:
        raise InvalidInput("policy", f"must be one of {', '.join(POLICIES)}.")
    if max_bytes < 1000:
        raise InvalidInput("max_bytes", "must be at least 1000.")
    if session.scalar(select(Group.id).where(Group.slug == slug)) is not None:
        raise InvalidInput("slug", f"there is already a group {slug}.")
    topic_id = _topic_id(session, topic) if topic else None
    _check_sharing(share_with_digest, visibility, topic_id)
    group = Group(
        slug=slug,
        name=name,
        description="\n".join(clean_text("description", line, 2000) for line in description.splitlines())[:2000],
        visibility=visibility,
        posting_policy=policy,
        max_bytes=max_bytes,
        allow_attachments=allow_attachments,
        topic_id=topic_id,
        share_with_digest=share_with_digest,
        created_by=by[:120],
    )
    session.add(group)
    session.flush()
    return group


def edit_group(
    session: Session,
    group: Group,
    *,
    name: str | None = None,
    description: str | None = None,
    visibility: str | None = None,
    policy: str | None = None,
    max_bytes: int | None = None,
    allow_attachments: bool | None = None,
    topic: str | None = None,
    share_with_digest: bool | None = None,
) -> list[str]:
    """Change the fields given (None: unchanged); the names of those that changed. Every
    value is checked before any is set, so a refusal changes nothing. ``topic`` is a
    digest topic's slug ("" for none)."""
    changes: dict = {}
    if name is not None:
        changes["name"] = clean_text("name", name, 120)
        if not changes["name"]:
            raise InvalidInput("name", "is required.")
    if description is not None:
        changes["description"] = "\n".join(clean_text("description", line, 2000) for line in description.splitlines())
    if visibility is not None:
        if visibility not in VISIBILITIES:
            raise InvalidInput("visibility", f"must be one of {', '.join(VISIBILITIES)}.")
        changes["visibility"] = visibility
    if policy is not None:
        if policy not in POLICIES:
            raise InvalidInput("policy", f"must be one of {', '.join(POLICIES)}.")
        changes["posting_policy"] = policy
    if max_bytes is not None:
        if max_bytes < 1000:
            raise InvalidInput("max_bytes", "must be at least 1000.")
        changes["max_bytes"] = max_bytes
    if allow_attachments is not None:
        changes["allow_attachments"] = allow_attachments
    if topic is not None:
        changes["topic_id"] = _topic_id(session, topic) if topic.strip() else None
    if share_with_digest is not None:
        changes["share_with_digest"] = share_with_digest
    if changes.get("share_with_digest", group.share_with_digest):
        _check_sharing(True, changes.get("visibility", group.visibility), changes.get("topic_id", group.topic_id))
    changed = [k for k, v in changes.items() if getattr(group, k) != v]
    for key in changed:
        setattr(group, key, changes[key])
    return changed


def _topic_id(session: Session, slug: str) -> int:
    found = session.scalar(select(Topic.id).where(Topic.slug == slug.strip().lower()))
    if found is None:
        known = ", ".join(session.scalars(select(Topic.slug).order_by(Topic.position, Topic.id)))
        raise InvalidInput("topic", f"there is no digest topic {slug!r} (topics: {known or 'none yet'}).")
    return found


def _check_sharing(share: bool, visibility: str, topic_id: int | None) -> None:
    """A group shares its threads with the monthly digest only with a public archive (the
    digest links to it) and a topic (readers who chose it see the threads)."""
    if not share:
        return
    if visibility != PUBLIC:
        raise InvalidInput("share_with_digest", "only a group with a public archive can share its threads.")
    if topic_id is None:
        raise InvalidInput(
            "share_with_digest",
            "give the group a digest topic first (--topic), so readers who chose it see its threads.",
        )


def get_group(session: Session, slug: str) -> Group:
    group = find_group(session, slug)
    if group is None:
        raise GroupError(f"There is no group {slug!r}.")
    return group


def find_group(session: Session, slug: str) -> Group | None:
    return session.scalar(select(Group).where(Group.slug == (slug or "").strip().lower()))


def list_groups(session: Session) -> list[tuple[Group, int]]:
    """Every group with its number of active members, by slug."""
    counts = dict(
        session.execute(
            select(GroupMember.group_id, func.count(GroupMember.id))
            .where(GroupMember.status == ACTIVE)
            .group_by(GroupMember.group_id)
        ).all()
    )
    return [(g, counts.get(g.id, 0)) for g in session.scalars(select(Group).order_by(Group.slug))]
