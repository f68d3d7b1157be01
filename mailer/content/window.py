"""The publish window: an item may go out only between its "not before" and "not after"
days (either may be open). The digest layer asks this module rather than reading the
columns itself, so the rule lives in one place."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from mailer.content.models import Item


def in_publish_window(day: date) -> ColumnElement[bool]:
    """SQL condition: the item's publish window includes ``day``."""
    return and_(
        or_(Item.publish_from.is_(None), Item.publish_from <= day),
        or_(Item.publish_until.is_(None), Item.publish_until >= day),
    )


def publishable_on(item: Item, day: date) -> bool:
    """The same rule for an item already loaded."""
    return (item.publish_from is None or item.publish_from <= day) and (
        item.publish_until is None or item.publish_until >= day
    )
