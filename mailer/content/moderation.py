"""Editors' decisions on submitted items."""
from __future__ import annotations

from sqlalchemy.orm import Session

from mailer.content.models import APPROVED, REJECTED, SUBMITTED, Item
from mailer.db import utcnow


class ModerationError(ValueError):
    """The item cannot move that way (unknown, or already decided)."""


def _decide(session: Session, item_id: int, status: str, editor: str) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise ModerationError(f"There is no item {item_id}.")
    if item.status == status:
        return item
    if item.status != SUBMITTED:
        raise ModerationError(f"Item {item_id} is already {item.status}.")
    item.status, item.decided_at, item.decided_by = status, utcnow(), editor
    return item


def approve(session: Session, item_id: int, editor: str) -> Item:
    """Approve a submitted item (approving it twice is harmless)."""
    return _decide(session, item_id, APPROVED, editor)


def reject(session: Session, item_id: int, editor: str) -> Item:
    return _decide(session, item_id, REJECTED, editor)
