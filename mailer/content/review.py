"""What a moderator reads beside an item: what an editor changed from the partner's
original (a word-level diff), the partner's history, and item searches with filters.

Everything here only reads; the decisions are in :mod:`mailer.content.moderation`.
Diffs are data (pairs of a tag and plain text), never markup: the page escapes the text
and marks removed and added words itself.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.content.models import Item, item_topics

# The fields of an item's snapshot (moderation._snapshot), in the order a page shows them.
FIELD_LABELS = {
    "title": "Title",
    "summary": "Summary",
    "body_markdown": "Full text",
    "link": "Link",
    "kind": "Kind",
    "topics": "Topics",
    "image_url": "Image address",
    "image_alt": "Image description",
    "event_starts_at": "Event starts",
    "event_place": "Event place",
    "publish_from": "Not before",
    "publish_until": "Not after",
}
SAME, REMOVED, ADDED = "same", "removed", "added"
_TOKENS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    before: str
    after: str
    pieces: list[tuple[str, str]]  # (SAME | REMOVED | ADDED, text), in reading order


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """``before`` -> ``after`` as runs of unchanged, removed and added text (words and the
    spaces between them), adjacent runs of one tag merged."""
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    pieces: list[tuple[str, str]] = []

    def put(tag: str, words: list[str]) -> None:
        text = "".join(words)
        if not text:
            return
        if pieces and pieces[-1][0] == tag:
            pieces[-1] = (tag, pieces[-1][1] + text)
        else:
            pieces.append((tag, text))

    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            put(SAME, a[i1:i2])
        else:
            put(REMOVED, a[i1:i2])
            put(ADDED, b[j1:j2])
    return pieces


def changes_from_original(item: Item, current: dict) -> list[FieldChange]:
    """The fields an editor changed in ``item``, from the partner's original (kept in
    ``Item.original``) to ``current`` (the item's snapshot now). Empty when nobody edited it."""
    if not item.original:
        return []
    original = json.loads(item.original)
    out = []
    for name, label in FIELD_LABELS.items():
        before, after = _as_text(original.get(name)), _as_text(current.get(name))
        if before != after:
            out.append(FieldChange(name, label, before, after, word_diff(before, after)))
    return out


@dataclass(frozen=True)
class PartnerHistory:
    counts: dict[str, int]  # items by status
    recent: list[Item]  # the latest items (not the one being read), newest first

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def partner_history(session: Session, partner_id: int, *, besides: int | None = None, limit: int = 8) -> PartnerHistory:
    """How a partner's items have fared: counts by status and the latest few."""
    counts = dict(
        session.execute(
            select(Item.status, func.count()).where(Item.partner_id == partner_id).group_by(Item.status)
        ).all()
    )
    q = select(Item).where(Item.partner_id == partner_id).order_by(Item.submitted_at.desc(), Item.id.desc())
    if besides is not None:
        q = q.where(Item.id != besides)
    return PartnerHistory(counts, list(session.scalars(q.limit(limit))))


@dataclass(frozen=True)
class ItemFilter:
    """Which items a moderator wants to see; empty values match everything."""

    status: str = ""
    partner_id: int | None = None
    kind: str = ""
    topic_id: int | None = None


def filtered_item_ids(f: ItemFilter):
    """A SELECT of ``(id, submitted_at)`` of the items matching ``f`` (for the inbox to
    combine with other kinds of held thing, sort and page). Every filter is an indexed
    column or the item-topic key."""
    q = select(Item.id, Item.submitted_at)
    if f.status:
        q = q.where(Item.status == f.status)
    if f.partner_id is not None:
        q = q.where(Item.partner_id == f.partner_id)
    if f.kind:
        q = q.where(Item.kind == f.kind)
    if f.topic_id is not None:
        q = q.where(Item.id.in_(select(item_topics.c.item_id).where(item_topics.c.topic_id == f.topic_id)))
    return q
