"""CSV export of subscribers, in the columns the importer reads back.

Every cell is defused against spreadsheet formulas (:func:`spreadsheet_safe`); the
importer undoes that (:func:`spreadsheet_value`), so an export imports back unchanged.
"""

from __future__ import annotations

import csv
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from subscribers.models import ERASED, Subscriber, subscriber_partners, subscriber_topics
from subscribers.search import Filter, conditions

COLUMNS = [
    "email",
    "name",
    "organisation",
    "organisation_type",
    "practice_code",
    "topics",
    "partners",
    "status",
    "consent_basis",
    "created_at",
    "confirmed_at",
    "paused_until",
]


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (tab and CR too, as some of them skip leading whitespace). The apostrophe is in the set so
# that defusing can be undone exactly: see spreadsheet_value.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_safe(value: str) -> str:
    """``value`` as a CSV cell no spreadsheet runs as a formula: an apostrophe (the
    spreadsheet's own "this is text" mark) goes before a risky first character. An email
    address may well start with = + - or ', so the email column needs it as much as names."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def spreadsheet_value(cell: str) -> str:
    """The value :func:`spreadsheet_safe` defused, so an export imports back unchanged; a
    cell that is not a defused one (say ``'Tis``) is returned as it is."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


def export_csv(session: Session, out: TextIO, status: str | None = None, where: Filter | None = None) -> int:
    """Write every subscriber (or those with ``status``, or matching the console's search
    ``where``) to ``out``; erased ones never. Returns the number of rows written."""
    topic_slug = dict(session.execute(select(Topic.id, Topic.slug)).all())
    partner_slug = dict(session.execute(select(Partner.id, Partner.slug)).all())
    topics: dict[int, list[str]] = {}
    partners: dict[int, list[str]] = {}
    for sid, tid in session.execute(select(subscriber_topics)):
        topics.setdefault(sid, []).append(topic_slug[tid])
    for sid, pid in session.execute(select(subscriber_partners)):
        partners.setdefault(sid, []).append(partner_slug[pid])
    q = select(Subscriber).where(Subscriber.status != ERASED).order_by(Subscriber.id)
    if where is not None:
        q = q.where(*conditions(where))
    if status:
        q = q.where(Subscriber.status == status)
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    n = 0
    for s in session.execute(q.execution_options(yield_per=2000)).scalars():
        writer.writerow(
            [
                spreadsheet_safe(cell)
                for cell in (
                    s.email,
                    s.name,
                    s.organisation,
                    s.organisation_type,
                    s.practice_code,
                    ";".join(sorted(topics.get(s.id, []))),
                    ";".join(sorted(partners.get(s.id, []))),
                    s.status,
                    s.consent_basis,
                    s.created_at.isoformat() if s.created_at else "",
                    s.confirmed_at.isoformat() if s.confirmed_at else "",
                    s.paused_until.isoformat() if s.paused_until else "",
                )
            ]
        )
        n += 1
    return n
