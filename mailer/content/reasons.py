"""Rejection reasons moderators pick from: a short title for the list, the words the
partner is told, and an order. Editable from the console; functions never commit.

A rejected item keeps the words it was rejected with (``Item.decision_reason``), so
editing or deleting a template never rewrites a decision already made.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.content.models import RejectionReason
from mailer.text import strip_controls
from mailer.validation import InvalidInput, clean_text

TITLE_MAX, TEXT_MAX = 80, 1000

# The starter reasons (migration c11_inbox_moderation adds the same on a fresh install).
STARTERS = (
    ("Out of scope", "Thank you for sending this in. It falls outside what the campaign's digest covers."),
    ("Already covered", "Thank you. We have already carried this news in a recent digest."),
    ("Needs more detail", "Thank you. Please send it again with a short summary and a link to read more."),
    ("Link does not work", "Thank you. The link in your item did not open for us: please check it and send it again."),
)


def all_reasons(session: Session) -> list[RejectionReason]:
    return list(session.scalars(select(RejectionReason).order_by(RejectionReason.position, RejectionReason.id)))


def get_reason(session: Session, reason_id: int) -> RejectionReason | None:
    return session.get(RejectionReason, reason_id)


def _check(session: Session, title: str, text: str, *, besides: int | None = None) -> tuple[str, str]:
    title = clean_text("title", title, TITLE_MAX)
    if not title:
        raise InvalidInput("title", "Give the reason a short name.")
    text = strip_controls(text or "").strip()  # line breaks are fine in an email body; escapes are not
    if not text:
        raise InvalidInput("text", "Write what the partner will be told.")
    if len(text) > TEXT_MAX:
        raise InvalidInput("text", f"must be at most {TEXT_MAX} characters (it has {len(text)}).")
    q = select(RejectionReason.id).where(func.lower(RejectionReason.title) == title.lower())
    if besides is not None:
        q = q.where(RejectionReason.id != besides)
    if session.scalar(q) is not None:
        raise InvalidInput("title", f"There is already a reason called {title!r}.")
    return title, text


def add_reason(session: Session, title: str, text: str) -> RejectionReason:
    """A new template at the end of the list; InvalidInput names a bad field."""
    title, text = _check(session, title, text)
    last = session.scalar(select(func.max(RejectionReason.position))) or 0
    row = RejectionReason(title=title, text=text, position=last + 1)
    session.add(row)
    session.flush()
    return row


def change_reason(session: Session, row: RejectionReason, title: str, text: str, position: int | None = None) -> dict:
    """Change a template; returns what it was (for the audit log)."""
    before = summary(row)
    row.title, row.text = _check(session, title, text, besides=row.id)
    if position is not None:
        row.position = position
    session.flush()
    return before


def delete_reason(session: Session, row: RejectionReason) -> dict:
    before = summary(row)
    session.delete(row)
    session.flush()
    return before


def seed_starters(session: Session) -> list[RejectionReason]:
    """Add the starter templates when there are none at all (a fresh install)."""
    if session.scalar(select(func.count()).select_from(RejectionReason)):
        return []
    return [add_reason(session, t, x) for t, x in STARTERS]


def summary(row: RejectionReason) -> dict:
    return {"title": row.title, "text": row.text, "position": row.position}
