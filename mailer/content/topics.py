"""Topics: their names, descriptions and order (the digest's sections and the subscribe
form's checkboxes follow ``position``). Functions never commit; InvalidInput names a bad
field."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.content.models import Topic
from mailer.validation import InvalidInput, clean_text

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def all_topics(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))


def summary(t: Topic) -> dict:
    """What the audit log keeps of a topic."""
    return {"slug": t.slug, "name": t.name, "description": t.description, "position": t.position}


def _name(session: Session, name: str, besides: int | None) -> str:
    name = clean_text("name", name, 120)
    if not name:
        raise InvalidInput("name", "Give the topic a name.")
    q = select(Topic.id).where(func.lower(Topic.name) == name.lower())
    if besides is not None:
        q = q.where(Topic.id != besides)
    if session.scalar(q) is not None:
        raise InvalidInput("name", f"There is already a topic called {name!r}.")
    return name


def add_topic(session: Session, slug: str, name: str, description: str = "") -> Topic:
    """A new topic at the end of the order. The slug (used in imports, feeds and the CLI)
    cannot change later."""
    slug = (slug or "").strip()
    if not _SLUG.match(slug) or len(slug) > 60:
        raise InvalidInput("slug", "Use lower-case letters, digits and hyphens, like heart-health.")
    if session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise InvalidInput("slug", f"There is already a topic {slug!r}.")
    last = session.scalar(select(func.max(Topic.position)))
    topic = Topic(
        slug=slug,
        name=_name(session, name, None),
        description=clean_text("description", description, 500),
        position=(last + 1) if last is not None else 0,
    )
    session.add(topic)
    session.flush()
    return topic


def change_topic(session: Session, topic: Topic, name: str, description: str) -> dict:
    """Rename or re-describe ``topic``; returns what it was (for the audit log)."""
    before = summary(topic)
    topic.name = _name(session, name, topic.id)
    topic.description = clean_text("description", description, 500)
    session.flush()
    return before


def move_topic(session: Session, topic: Topic, step: int) -> list[str]:
    """Move ``topic`` ``step`` places (-1 up, +1 down) and renumber every topic 0, 1, 2...
    Returns the new order of slugs."""
    order = all_topics(session)
    i = order.index(topic)
    j = max(0, min(len(order) - 1, i + step))
    order.insert(j, order.pop(i))
    for n, t in enumerate(order):
        t.position = n
    session.flush()
    return [t.slug for t in order]
