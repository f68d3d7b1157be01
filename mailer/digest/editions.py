"""Building an edition: which approved items a month's digests carry."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.content import moderation
from mailer.content.models import APPROVED, Item
from mailer.content.window import in_publish_window
from mailer.db import utcnow
from mailer.digest.models import DRAFT, EDITABLE, Edition

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MONTHS = ("January February March April May June July August September October November December").split()


class EditionError(ValueError):
    """The edition cannot be built or sent as asked; the message says why."""


def parse_period(period: str) -> tuple[date, date]:
    """``"2026-11"`` -> (first day, first day of the next month). EditionError if malformed."""
    m = _PERIOD.match(period or "")
    if not m:
        raise EditionError(f"Period must look like 2026-11, not {period!r}.")
    y, mo = int(m.group(1)), int(m.group(2))
    return date(y, mo, 1), date(y + (mo == 12), mo % 12 + 1, 1)


def previous_period_start(start: date) -> date:
    return date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)


def default_subject(period: str) -> str:
    start, _ = parse_period(period)
    return f"Your campaign digest - {MONTHS[start.month - 1]} {start.year}"


def find_edition(session: Session, period: str, *, lock: bool = False) -> Edition | None:
    """The edition for ``period``, or None if there is none yet: the one lookup of an
    edition by period. EditionError if ``period`` is malformed. ``lock`` takes the row
    lock (SELECT ... FOR UPDATE) until the transaction ends, for a caller that decides
    from the status and must not race another (the monthly job)."""
    parse_period(period)
    query = select(Edition).where(Edition.period == period)
    return session.scalar(query.with_for_update() if lock else query)


def get_edition(session: Session, period: str) -> Edition:
    """The edition for ``period`` or :class:`EditionError` saying how to make it."""
    edition = find_edition(session, period)
    if edition is None:
        raise EditionError(f"There is no {period} edition. Build it first: mailer edition build --period {period}")
    return edition


def build_edition(session: Session, period: str) -> Edition:
    """Create or rebuild the draft edition for ``period`` and freeze its items.

    It carries approved items dated in the period, or in the month before if no edition has
    carried them yet (so an item approved just after last month's send is not lost). An item
    is carried by one edition only. Rebuilding a draft picks up new approvals; an edition
    that has started sending cannot change (:class:`EditionError`); a scheduled one can, and
    stays scheduled. A featured item that is no longer carried stops being featured.
    """
    start, end = parse_period(period)
    edition = find_edition(session, period)
    if edition is None:
        edition = Edition(period=period, subject=default_subject(period))  # a draft
        session.add(edition)
        session.flush()
    elif edition.status not in EDITABLE:
        raise EditionError(f"The {period} edition is already {edition.status}; its items are frozen.")
    session.execute(update(Item).where(Item.edition_id == edition.id).values(edition_id=None))
    session.execute(
        update(Item)
        .where(
            Item.status == APPROVED,
            Item.edition_id.is_(None),
            Item.dated >= previous_period_start(start),
            Item.dated < end,
            in_publish_window(utcnow().date()),
        )
        .values(edition_id=edition.id)
    )
    if edition.featured_item_id is not None:
        session.flush()
        if session.scalar(select(Item.edition_id).where(Item.id == edition.featured_item_id)) != edition.id:
            edition.featured_item_id = None
    if edition.featured_item_id is None:
        # An item an editor flagged with `mailer items feature` leads the edition that carries
        # it, unless the edition's editor chose another; the newest flagged one wins.
        edition.featured_item_id = session.scalar(
            select(Item.id)
            .where(Item.edition_id == edition.id, Item.featured)
            .order_by(Item.dated.desc(), Item.id.desc())
            .limit(1)
        )
    edition.built_at = utcnow()
    # A rebuild may change the items: an approval given before it no longer holds.
    edition.approved_by_id = None
    edition.approved_at = None
    return edition


NETWORKS_KEPT = 40  # threads in one edition's "What networks are doing"


def set_networks(session: Session, edition: Edition, threads: list[dict]) -> int:
    """Freeze the threads groups share (``mailer.groups.network``) onto a draft edition:
    plain data, each checked (text, an https link, a whole number of replies, a topic
    id); an entry that is not is left out, never the edition. Returns how many."""
    if edition.status not in EDITABLE:
        raise EditionError(f"The {edition.period} edition is already {edition.status}; its contents are frozen.")
    kept = []
    for t in threads[: NETWORKS_KEPT * 4]:
        try:
            entry = {
                "group": " ".join(str(t["group"]).split())[:120],
                "subject": " ".join(str(t["subject"]).split())[:200] or "(no subject)",
                "url": str(t["url"]),
                "replies": int(t["replies"]),
                "topic_id": int(t["topic_id"]),
            }
        except (KeyError, TypeError, ValueError):
            continue
        if entry["url"].startswith(("https://", "http://")) and entry["replies"] >= 0 and entry["group"]:
            kept.append(entry)
    edition.networks = kept[:NETWORKS_KEPT]
    return len(edition.networks)


def edition_items(session: Session, edition_id: int) -> list[Item]:
    return list(session.scalars(select(Item).where(Item.edition_id == edition_id).order_by(Item.id)))


def withdraw_item(session: Session, item_id: int, editor: str, reason: str = "") -> Item:
    """Take an approved item back before any edition carrying it is sent: it leaves a draft
    edition at once. Once its edition has left draft (scheduled, sending, sent...) the item
    is frozen in it and :class:`~mailer.content.moderation.ModerationError` says so."""
    item = moderation.get_item(session, item_id)
    edition = session.get(Edition, item.edition_id) if item.edition_id is not None else None
    if item.status == APPROVED and edition is not None and edition.status != DRAFT:
        raise moderation.ModerationError(f"Item {item_id} has already gone out in an edition; it cannot be withdrawn.")
    return moderation.mark_withdrawn(session, item_id, editor, reason)
