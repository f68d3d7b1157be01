"""An edition's life as the editor sees it: edit, schedule, unschedule, and which scheduled
editions are due. Cancelling stops deliveries too, so it is the delivery layer's
(:func:`mailer.delivery.control.cancel`).

The statuses and the moves between them (draft -> scheduled -> sending -> sent, sending <->
paused, cancelled on the way) are :mod:`mailer.digest.status`'s; this module asks it for
them. Editors can change the subject, preheader, intro and featured item while the edition
is a draft or scheduled (:func:`edit`); from ``sending`` on, what subscribers get is fixed.
Functions take a session and never commit; bad input raises :class:`EditionError` (a
refused move :class:`~mailer.digest.status.EditionStateError`, one of them) and changes
nothing.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Item
from mailer.db import utcnow
from mailer.digest import status
from mailer.digest.editions import EditionError, edition_items, get_edition  # noqa: F401  (get_edition: for the CLI)
from mailer.digest.models import EDITABLE, SCHEDULED, Edition

_UNSET = object()


def _text(field: str, value: str, max_length: int, *, multiline: bool = False) -> str:
    """Trimmed text without control characters (line breaks only where ``multiline``).

    Format characters (Unicode Cf) are allowed: Urdu, Bengali and Punjabi need ZWJ/ZWNJ
    and mixed right-to-left text needs direction marks.
    """
    value = (value or "").strip().replace("\r\n", "\n")
    allowed = "\n\t" if multiline else ""
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        raise EditionError(
            f"The {field} must not contain "
            + ("control characters." if multiline else "line breaks or control characters.")
        )
    if len(value) > max_length:
        raise EditionError(f"The {field} must be at most {max_length} characters (it has {len(value)}).")
    return value


def edit(
    session: Session,
    edition: Edition,
    *,
    subject=_UNSET,
    preheader=_UNSET,
    intro=_UNSET,
    featured_item_id=_UNSET,
    item_order=_UNSET,
) -> Edition:
    """Change what the editor controls. Only given fields change; ``featured_item_id=None``
    clears the featured item; ``item_order`` (ids of the edition's items, first first; None
    or empty: the default order) orders items within their sections. Every value is
    checked before any is applied."""
    if edition.status not in EDITABLE:
        raise EditionError(f"The {edition.period} edition is {edition.status}; it can no longer be edited.")
    changes = {}
    if subject is not _UNSET:
        changes["subject"] = _text("subject", subject, 200)
        if not changes["subject"]:
            raise EditionError("The subject must not be empty.")
    if preheader is not _UNSET:
        changes["preheader"] = _text("preheader", preheader, 200)
    if intro is not _UNSET:
        changes["intro"] = _text("intro", intro, 2000, multiline=True)
    if featured_item_id is not _UNSET:
        if featured_item_id is not None:
            carried_by = session.scalar(select(Item.edition_id).where(Item.id == featured_item_id))
            if carried_by is None or carried_by != edition.id:
                raise EditionError(
                    f"Item {featured_item_id} is not in the {edition.period} edition; "
                    "only its own items can be featured."
                )
        changes["featured_item_id"] = featured_item_id
    if item_order is not _UNSET:
        changes["item_order"] = _order(session, edition, item_order)
    changed = {key: value for key, value in changes.items() if getattr(edition, key) != value}
    for key, value in changed.items():
        setattr(edition, key, value)
    if changed:
        void_approval(edition)
    return edition


def void_approval(edition: Edition) -> None:
    """Any change to what readers get voids an approval given before it (see
    :mod:`mailer.staff.approval`)."""
    edition.approved_by_id = None
    edition.approved_at = None


def _order(session: Session, edition: Edition, item_order) -> list[int] | None:
    """``item_order`` checked: only this edition's items, each once."""
    if not item_order:
        return None
    ids = list(dict.fromkeys(int(i) for i in item_order))
    carried = {item.id for item in edition_items(session, edition.id)}
    strangers = [str(i) for i in ids if i not in carried]
    if strangers:
        raise EditionError(
            f"Item {', '.join(strangers)} is not in the {edition.period} edition; only its own items can be ordered."
        )
    return ids


def schedule(session: Session, edition: Edition, when: datetime, *, now: datetime | None = None) -> Edition:
    """Plan the send for ``when`` (timezone-aware, in the future). Needs items to send."""
    status.check(edition, status.SCHEDULE)
    if when.tzinfo is None:
        raise EditionError("The schedule time needs a time zone.")
    if when <= (now or utcnow()):
        raise EditionError(f"The schedule time {when:%Y-%m-%d %H:%M %Z} is in the past.")
    if not edition_items(session, edition.id):
        raise EditionError(f"The {edition.period} edition has no items; approve some and rebuild it first.")
    status.transition(session, edition, status.SCHEDULE, scheduled_for=when.astimezone(timezone.utc))
    return edition


def unschedule(session: Session, edition: Edition) -> Edition:
    """Back to a draft: the planned time is forgotten."""
    status.transition(session, edition, status.UNSCHEDULE)
    return edition


def due(session: Session, now: datetime | None = None) -> list[Edition]:
    """Scheduled editions whose time has come."""
    return list(
        session.scalars(select(Edition).where(Edition.status == SCHEDULED, Edition.scheduled_for <= (now or utcnow())))
    )
