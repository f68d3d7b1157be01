"""Finding subscribers for the console: a safe filter builder, paginated.

A :class:`Filter` holds only typed values (a text, a status from a fixed list, ids); each
becomes one SQLAlchemy condition with bound parameters, so nothing typed into the search
form is ever SQL. Text is matched as a substring with ``LIKE`` wildcards escaped; a
complete address is matched exactly through the ``lower(email)`` index; a practice code
exactly through its index; a topic or partner through the choice tables' indexes.
Erased subscribers are never found (nothing is left of them to find).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.orm import Session

from mailer.db import like_escaped
from mailer.paging import Paged, clamp
from mailer.validation import InvalidInput, email_address
from subscribers.models import (
    CONFIRMED,
    ERASED,
    PENDING,
    SEARCH_SEPARATOR,
    UNSUBSCRIBED,
    Subscriber,
    search_text,
    subscriber_partners,
    subscriber_topics,
)

STATUSES = (CONFIRMED, PENDING, UNSUBSCRIBED)
MAX_TEXT = 100


@dataclass(frozen=True)
class Filter:
    """What to look for; empty fields match everyone."""

    text: str = ""  # part of the address, name or organisation
    practice_code: str = ""
    status: str = ""
    topic_id: int | None = None
    partner_id: int | None = None

    def __post_init__(self):
        if self.status and self.status not in STATUSES:
            raise InvalidInput("status", f"The status must be one of {', '.join(STATUSES)}.")

    @property
    def empty(self) -> bool:
        return not (self.text or self.practice_code or self.status or self.topic_id or self.partner_id)

    def describe(self) -> dict:
        """The filter for the audit log: which fields were used, never the text typed (it
        may be somebody's address, and the log outlives an erasure)."""
        out: dict = {"text": bool(self.text)}
        for name in ("practice_code", "status", "topic_id", "partner_id"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


def conditions(f: Filter) -> list[ColumnElement]:
    """The WHERE conditions of ``f`` (all must hold)."""
    where: list[ColumnElement] = [Subscriber.status != ERASED]
    text = f.text.strip()[:MAX_TEXT]
    if text:
        try:
            address = email_address("email", text) if "@" in text else None
        except InvalidInput:
            address = None
        if address is not None:
            where.append(func.lower(Subscriber.email) == address.lower())
        else:
            if SEARCH_SEPARATOR in text:
                where.append(false())  # no field holds it; in the joined text it would match across two
            else:
                where.append(search_text().like(f"%{like_escaped(text.casefold())}%", escape="\\"))
    if f.practice_code:
        where.append(Subscriber.practice_code == f.practice_code.strip().replace(" ", "").upper()[:10])
    if f.status:
        where.append(Subscriber.status == f.status)
    if f.topic_id:
        where.append(
            Subscriber.id.in_(
                select(subscriber_topics.c.subscriber_id).where(subscriber_topics.c.topic_id == f.topic_id)
            )
        )
    if f.partner_id:
        where.append(
            Subscriber.id.in_(
                select(subscriber_partners.c.subscriber_id).where(subscriber_partners.c.partner_id == f.partner_id)
            )
        )
    return where


@dataclass(frozen=True)
class Page(Paged):
    subscribers: list[Subscriber]
    total: int
    page: int
    per_page: int


def search(session: Session, f: Filter, *, page: int = 1, per_page: int = 50) -> Page:
    """Subscribers matching ``f``, newest first, one page of them, and how many match."""
    where = conditions(f)
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*where)) or 0
    page = clamp(page, total, per_page)
    rows = session.scalars(
        select(Subscriber).where(*where).order_by(Subscriber.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return Page(list(rows), total, page, per_page)
