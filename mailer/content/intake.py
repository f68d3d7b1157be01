"""Taking items in from partners. Every route in (form, later feed and API) ends here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import ITEM_KINDS, SUBMITTED, Item, Partner, Topic
from mailer.validation import InvalidInput, clean_text, web_link

SUMMARY_MAX = 600


@dataclass(frozen=True)
class ItemDraft:
    """What a partner typed, before validation."""

    title: str
    summary: str
    link: str
    kind: str
    topic_ids: list[int]


def submit_item(session: Session, partner: Partner, draft: ItemDraft, *, today: date) -> Item:
    """Validate ``draft`` and store it as a ``submitted`` item of ``partner``.

    Raises :class:`InvalidInput` naming the first bad field; nothing is written then.
    """
    title = clean_text("title", draft.title, 200)
    if not title:
        raise InvalidInput("title", "is required.")
    summary = (draft.summary or "").strip()
    if not summary:
        raise InvalidInput("summary", "is required.")
    if len(summary) > SUMMARY_MAX:
        raise InvalidInput("summary", f"must be at most {SUMMARY_MAX} characters.")
    if draft.kind not in ITEM_KINDS:
        raise InvalidInput("kind", "choose one of the listed kinds.")
    link = web_link("link", draft.link)
    ids = set(draft.topic_ids)
    topics = list(session.scalars(select(Topic).where(Topic.id.in_(ids)))) if ids else []
    if not topics:
        raise InvalidInput("topics", "Choose at least one topic.")
    if len(topics) != len(ids):
        raise InvalidInput("topics", "One of the topics chosen does not exist.")
    item = Item(
        partner_id=partner.id,
        kind=draft.kind,
        title=title,
        summary=summary,
        link=link,
        status=SUBMITTED,
        dated=today,
        topics=topics,
    )
    session.add(item)
    session.flush()
    return item
