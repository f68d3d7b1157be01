"""Taking items in from partners. Every route in (form, feed, API) ends here.

:func:`check_draft` turns what a partner typed into clean values or raises
:class:`InvalidInput` naming the field; :func:`submit_item` stores a checked draft. Both
are shared by the form, its live preview and the API, so all three refuse the same things.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import APPROVED, ITEM_KINDS, SUBMITTED, Item, ItemEvent, Partner, Topic
from mailer.content.sanitize import BODY_MAX, markdown_to_html, strip_invisible
from mailer.db import utcnow
from mailer.validation import InvalidInput, clean_text, email_address, web_link

TITLE_MAX = 200
SUMMARY_MAX = 600
PLACE_MAX = 300
ALT_MAX = 300


@dataclass(frozen=True)
class ItemDraft:
    """What a partner typed, before validation. Dates and times are ISO strings."""

    title: str
    summary: str
    link: str
    kind: str
    topic_ids: list[int]
    body: str = ""
    image_url: str = ""
    image_alt: str = ""
    event_date: str = ""  # YYYY-MM-DD
    event_time: str = ""  # HH:MM, optional
    event_place: str = ""
    publish_from: str = ""  # YYYY-MM-DD, optional embargo
    publish_until: str = ""  # YYYY-MM-DD, optional expiry
    contact_email: str = ""

    def fingerprint(self) -> str:
        """SHA-256 of the draft's content: the same request twice has the same print."""
        data = asdict(self)
        data["topic_ids"] = sorted(set(data["topic_ids"]))
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass
class CheckedItem:
    """A draft that passed every check, values cleaned and parsed."""

    title: str
    summary: str
    link: str
    kind: str
    topics: list[Topic]
    body_markdown: str = ""
    body_html: str = ""
    image_url: str | None = None
    image_alt: str | None = None
    event_starts_at: datetime | None = None
    event_place: str | None = None
    publish_from: date | None = None
    publish_until: date | None = None
    contact_email: str | None = None
    kind_label: str = field(init=False)

    def __post_init__(self):
        self.kind_label = ITEM_KINDS.get(self.kind, self.kind)


def item_link(field_name: str, url: str | None) -> str:
    """A web link fit for an email: http(s) only, no user:password@ (it hides the real host,
    as in https://nhs.uk@example.net) and a host that IDNA can encode."""
    url = web_link(field_name, url)
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise InvalidInput(field_name, "must not contain a user name or password before the address.")
    try:
        (parts.hostname or "").encode("idna")
    except UnicodeError:
        raise InvalidInput(field_name, "has a web address name that is not valid.") from None
    return url


def _iso_date(field_name: str, value: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field_name, "must be a date like 2026-12-03.") from None


def _event_start(day: date, time_text: str) -> datetime:
    time_text = (time_text or "").strip()
    if not time_text:
        return datetime(day.year, day.month, day.day)
    try:
        hh, mm = time_text.split(":")[:2]
        return datetime(day.year, day.month, day.day, int(hh), int(mm))
    except ValueError:
        raise InvalidInput("event_time", "must be a time like 18:30.") from None


def _text(field_name: str, value: str | None, limit: int, *, required: bool = False) -> str:
    value = clean_text(field_name, unicodedata.normalize("NFC", value or ""), limit)
    if required and not value:
        raise InvalidInput(field_name, "is required.")
    return value


def topic_ids(session: Session, slugs) -> dict[str, int]:
    """Topic id by slug, for those of ``slugs`` that name a topic (the caller reports the rest)."""
    return dict(session.execute(select(Topic.slug, Topic.id).where(Topic.slug.in_(list(slugs)))).all())


def check_draft(session: Session, draft: ItemDraft, *, today: date, require_topics: bool = True) -> CheckedItem:
    """Validate every field of ``draft``; raise :class:`InvalidInput` for the first bad one.

    Titles refuse control and format characters outright (a direction override in a
    title is a trick, not a typo); the body has them stripped. Nothing is written.
    """
    if draft.kind not in ITEM_KINDS:
        raise InvalidInput("kind", "choose one of the listed kinds.")
    title = _text("title", draft.title, TITLE_MAX, required=True)
    summary = strip_invisible(draft.summary or "").strip()
    if not summary:
        raise InvalidInput("summary", "is required.")
    if len(summary) > SUMMARY_MAX:
        raise InvalidInput("summary", f"must be at most {SUMMARY_MAX} characters (it has {len(summary)}).")
    body = strip_invisible(draft.body or "").strip()
    if len(body) > BODY_MAX:
        raise InvalidInput("body", f"must be at most {BODY_MAX} characters (it has {len(body)}).")
    link = item_link("link", draft.link)
    image_url = item_link("image_url", draft.image_url) if (draft.image_url or "").strip() else None
    image_alt = _text("image_alt", draft.image_alt, ALT_MAX) or None
    if image_url and not image_alt:
        raise InvalidInput("image_alt", "describe the image for people who cannot see it.")
    if image_alt and not image_url:
        image_alt = None
    start = place = None
    if draft.kind == "event":
        day = _iso_date("event_date", draft.event_date)
        if day is None:
            raise InvalidInput("event_date", "is required for an event.")
        if day < today:
            raise InvalidInput("event_date", "has already passed.")
        start = _event_start(day, draft.event_time)
        place = _text("event_place", draft.event_place, PLACE_MAX, required=True)
    publish_from = _iso_date("publish_from", draft.publish_from)
    publish_until = _iso_date("publish_until", draft.publish_until)
    if publish_until and publish_until < today:
        raise InvalidInput("publish_until", "is already in the past.")
    if publish_from and publish_until and publish_until < publish_from:
        raise InvalidInput("publish_until", "must be on or after the 'not before' date.")
    contact = email_address("contact_email", draft.contact_email, required=False)
    ids = {int(i) for i in draft.topic_ids}
    topics = list(session.scalars(select(Topic).where(Topic.id.in_(ids)).order_by(Topic.position))) if ids else []
    if len(topics) != len(ids):
        raise InvalidInput("topics", "One of the topics chosen does not exist.")
    if require_topics and not topics:
        raise InvalidInput("topics", "Choose at least one topic.")
    return CheckedItem(
        title=title,
        summary=summary,
        link=link,
        kind=draft.kind,
        topics=topics,
        body_markdown=body,
        body_html=markdown_to_html(body),
        image_url=image_url,
        image_alt=image_alt,
        event_starts_at=start,
        event_place=place,
        publish_from=publish_from,
        publish_until=publish_until,
        contact_email=contact,
    )


def store_item(
    session: Session,
    partner: Partner,
    checked: CheckedItem,
    *,
    today: date,
    source: str = "form",
    source_key: str | None = None,
    fingerprint: str | None = None,
) -> Item:
    """Store ``checked`` as ``partner``'s item: approved at once for a trusted partner whose
    item has topics, else submitted for an editor. Logs the arrival; never commits."""
    auto = partner.trusted and bool(checked.topics)
    item = Item(
        partner_id=partner.id,
        kind=checked.kind,
        title=checked.title,
        summary=checked.summary,
        link=checked.link,
        status=APPROVED if auto else SUBMITTED,
        # An embargoed item belongs to the month it may first go out in.
        dated=max(today, checked.publish_from or today),
        topics=checked.topics,
        body_markdown=checked.body_markdown,
        body_html=checked.body_html,
        image_url=checked.image_url,
        image_alt=checked.image_alt,
        event_starts_at=checked.event_starts_at,
        event_place=checked.event_place,
        publish_from=checked.publish_from,
        publish_until=checked.publish_until,
        contact_email=checked.contact_email,
        source=source,
        source_key=source_key,
        source_fingerprint=fingerprint,
    )
    actor = f"partner:{partner.slug}"
    item.events.append(ItemEvent(action="submitted", actor=actor, reason=f"via {source}"))
    if auto:
        item.decided_at, item.decided_by = utcnow(), "trusted partner"
        item.events.append(
            ItemEvent(action="approved", actor="trusted partner", reason="the partner is trusted: no moderation")
        )
    session.add(item)
    session.flush()
    return item


def recent_duplicate(
    session: Session, partner: Partner, draft: ItemDraft, *, within: timedelta = timedelta(hours=24)
) -> Item | None:
    """``partner``'s item made from the very same draft in the last ``within``, if any:
    a double-clicked or re-sent form should find its first item, not make a second."""
    return session.scalar(
        select(Item)
        .where(
            Item.partner_id == partner.id,
            Item.source_fingerprint == draft.fingerprint(),
            Item.submitted_at >= utcnow() - within,
        )
        .order_by(Item.id)
        .limit(1)
    )


def submit_item(
    session: Session,
    partner: Partner,
    draft: ItemDraft,
    *,
    today: date,
    source: str = "form",
    source_key: str | None = None,
) -> Item:
    """Validate ``draft`` and store it as ``partner``'s item (see :func:`store_item`).

    Raises :class:`InvalidInput` naming the first bad field; nothing is written then.
    """
    checked = check_draft(session, draft, today=today)
    return store_item(
        session, partner, checked, today=today, source=source, source_key=source_key, fingerprint=draft.fingerprint()
    )
