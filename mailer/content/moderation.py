"""Editors' decisions on items, each logged with who, when and why.

    submitted --approve--> approved --withdraw (before an edition is sent)--> withdrawn
    submitted --reject (reason required)--> rejected

Editors may edit an item before approving it; the partner's version is kept once, as JSON,
in ``Item.original``. Functions here never commit and never send mail: the caller
enqueues the partner notice after committing (see :func:`needs_decision_notice`).
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.intake import ItemDraft, check_draft
from mailer.content.models import APPROVED, REJECTED, SUBMITTED, WITHDRAWN, Item, ItemEvent
from mailer.content.notices import notice_address
from mailer.db import utcnow
from mailer.validation import InvalidInput, clean_text


class ModerationError(ValueError):
    """The item cannot move that way (unknown, already decided, already sent...)."""


def get_item(session: Session, item_id: int) -> Item:
    """The item ``item_id``, or :class:`ModerationError` saying there is none."""
    item = session.get(Item, item_id)
    if item is None:
        raise ModerationError(f"There is no item {item_id}.")
    return item


def list_items(session: Session, status: str | None = None) -> list[Item]:
    """Every item (or those in ``status``), oldest first."""
    q = select(Item).order_by(Item.id)
    if status:
        q = q.where(Item.status == status)
    return list(session.scalars(q))


def _editor(editor: str) -> str:
    editor = clean_text("editor", editor, 120)
    if not editor:
        raise ModerationError("Say who is deciding (--editor).")
    return editor


def _log(item: Item, action: str, editor: str, reason: str | None = None) -> None:
    item.events.append(ItemEvent(action=action, actor=editor, reason=reason, at=utcnow()))


def approve(session: Session, item_id: int, editor: str) -> Item:
    """Approve a submitted item (approving it twice is harmless). It needs a topic first:
    an item without one would reach nobody."""
    editor = _editor(editor)
    item = get_item(session, item_id)
    if item.status == APPROVED:
        return item
    if item.status != SUBMITTED:
        raise ModerationError(f"Item {item_id} is already {item.status}.")
    if not item.topics:
        raise ModerationError(
            f"Item {item_id} has no topic yet: give it one with `mailer items edit {item_id} --topic SLUG`."
        )
    item.status, item.decided_at, item.decided_by, item.decision_reason = APPROVED, utcnow(), editor, None
    _log(item, "approved", editor)
    return item


def reject(session: Session, item_id: int, editor: str, reason: str) -> Item:
    """Reject a submitted item. The reason is required: the partner is told it."""
    editor = _editor(editor)
    reason = (reason or "").strip()
    if not reason:
        raise ModerationError("Give the partner a reason for rejecting (--reason).")
    if len(reason) > 1000:
        raise ModerationError("The reason must be at most 1000 characters.")
    item = get_item(session, item_id)
    if item.status == REJECTED:
        return item
    if item.status != SUBMITTED:
        raise ModerationError(f"Item {item_id} is already {item.status}.")
    item.status, item.decided_at, item.decided_by, item.decision_reason = REJECTED, utcnow(), editor, reason
    _log(item, "rejected", editor, reason)
    return item


def mark_withdrawn(session: Session, item_id: int, editor: str, reason: str = "") -> Item:
    """Take an approved item back, out of the edition that carries it.

    Items know nothing of editions' states: the caller makes sure the item's edition has
    not left draft (:func:`mailer.digest.editions.withdraw_item` does; an item already
    sent cannot be withdrawn). Withdrawing twice is harmless.
    """
    editor = _editor(editor)
    item = get_item(session, item_id)
    if item.status == WITHDRAWN:
        return item
    if item.status != APPROVED:
        raise ModerationError(f"Item {item_id} is {item.status}; only approved items can be withdrawn.")
    item.status, item.edition_id = WITHDRAWN, None
    item.decided_at, item.decided_by = utcnow(), editor
    _log(item, "withdrawn", editor, reason.strip() or None)
    return item


def set_featured(session: Session, item_id: int, editor: str, featured: bool = True) -> Item:
    editor = _editor(editor)
    item = get_item(session, item_id)
    if item.status in (REJECTED, WITHDRAWN):
        raise ModerationError(f"Item {item_id} is {item.status}; it cannot be featured.")
    if item.featured != featured:
        item.featured = featured
        _log(item, "featured" if featured else "unfeatured", editor)
    return item


def _snapshot(item: Item) -> str:
    return json.dumps(
        {
            "title": item.title,
            "summary": item.summary,
            "link": item.link,
            "kind": item.kind,
            "body_markdown": item.body_markdown,
            "image_url": item.image_url,
            "image_alt": item.image_alt,
            "topics": [t.slug for t in item.topics],
            "event_starts_at": item.event_starts_at.isoformat() if item.event_starts_at else None,
            "event_place": item.event_place,
            "publish_from": item.publish_from.isoformat() if item.publish_from else None,
            "publish_until": item.publish_until.isoformat() if item.publish_until else None,
        },
        ensure_ascii=False,
    )


def snapshot(item: Item) -> dict:
    """The item's content fields as they are now (the shape ``Item.original`` keeps)."""
    return json.loads(_snapshot(item))


def draft_of(item: Item) -> ItemDraft:
    """The item's current values as a draft, ready to be changed and checked again."""
    start = item.event_starts_at
    return ItemDraft(
        title=item.title,
        summary=item.summary,
        link=item.link,
        kind=item.kind,
        topic_ids=[t.id for t in item.topics],
        body=item.body_markdown,
        image_url=item.image_url or "",
        image_alt=item.image_alt or "",
        event_date=start.date().isoformat() if start else "",
        event_time=start.strftime("%H:%M") if start and (start.hour or start.minute) else "",
        event_place=item.event_place or "",
        publish_from=item.publish_from.isoformat() if item.publish_from else "",
        publish_until=item.publish_until.isoformat() if item.publish_until else "",
        contact_email=item.contact_email or "",
    )


def edit(session: Session, item_id: int, editor: str, draft: ItemDraft, *, today, note: str = "") -> Item:
    """Replace a submitted item's content with ``draft`` (checked like a submission).

    The partner's version is saved in ``original`` the first time; later edits keep it.
    Raises InvalidInput for a bad field, ModerationError once the item is decided.
    """
    editor = _editor(editor)
    item = get_item(session, item_id)
    if item.status != SUBMITTED:
        raise ModerationError(f"Item {item_id} is {item.status}; only submitted items can be edited.")
    checked = check_draft(session, draft, today=today, require_topics=False)
    if item.original is None:
        item.original = _snapshot(item)
    for name in (
        "title",
        "summary",
        "link",
        "kind",
        "topics",
        "body_markdown",
        "body_html",
        "image_url",
        "image_alt",
        "event_starts_at",
        "event_place",
        "publish_from",
        "publish_until",
        "contact_email",
    ):
        setattr(item, name, getattr(checked, name))
    item.dated = max(item.dated, checked.publish_from or item.dated)
    _log(item, "edited", editor, note.strip() or None)
    return item


def original_of(item: Item) -> dict | None:
    """The partner's own version of an edited item, or None if no editor changed it."""
    return json.loads(item.original) if item.original else None


def needs_decision_notice(item: Item) -> bool:
    """True when the item's partner is to hear the decision and has not yet
    (see :func:`mailer.content.notices.notice_address` for who hears)."""
    return item.status in (APPROVED, REJECTED) and notice_address(item) is not None and item.decision_sent_at is None


__all__ = [
    "InvalidInput",
    "ModerationError",
    "get_item",
    "list_items",
    "approve",
    "reject",
    "mark_withdrawn",
    "set_featured",
    "edit",
    "draft_of",
    "snapshot",
    "original_of",
    "needs_decision_notice",
]
