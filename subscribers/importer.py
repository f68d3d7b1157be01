"""CSV import of subscribers: header-mapped, all-or-nothing, with a report for every row.

Columns are found by header name (``email`` is required; ``name``, ``organisation``,
``organisation_type``, ``practice_code``, ``topics`` and ``partners`` are optional, with
common spellings accepted). Topics and partners are slugs or names separated by ``;``.
Each row ends up ``created``, ``updated``, ``duplicate`` (seen earlier in the file),
``suppressed`` (on the suppression list: never brought back by an import) or ``invalid``.

The caller owns the transaction: :func:`import_csv` raises :class:`ImportRefused` (after
writing nothing) when any row is invalid unless ``skip_invalid`` is set, so an import is
either whole or absent. Rows are written with bulk statements: 100,000 rows take seconds.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.db import utcnow
from mailer.validation import InvalidInput, clean_text, email_address
from subscribers import suppression
from subscribers.export import spreadsheet_value
from subscribers.models import (
    CONFIRMED,
    ORGANISATION_TYPES,
    ConsentEvent,
    Subscriber,
    subscriber_partners,
    subscriber_topics,
)
from subscribers.profile import NO_CHOICE_MESSAGE, clean_practice_code
from subscribers.service import CONSENT_WORDING_VERSION

BASES = ("consent", "legitimate-interests")
OUTCOMES = ("created", "updated", "duplicate", "suppressed", "invalid")
_ALIASES = {
    "email": "email",
    "emailaddress": "email",
    "emailaddr": "email",
    "mail": "email",
    "name": "name",
    "fullname": "name",
    "contactname": "name",
    "organisation": "organisation",
    "organization": "organisation",
    "org": "organisation",
    "organisationname": "organisation",
    "organizationname": "organisation",
    "organisationtype": "organisation_type",
    "organizationtype": "organisation_type",
    "orgtype": "organisation_type",
    "type": "organisation_type",
    "practicecode": "practice_code",
    "odscode": "practice_code",
    "ods": "practice_code",
    "organisationcode": "practice_code",
    "code": "practice_code",
    "topics": "topics",
    "topic": "topics",
    "partners": "partners",
    "partner": "partners",
}
_SPLIT = re.compile(r"\s*[;|]\s*")
_BATCH = 5000
_NOT_UTF8 = 'The file is not UTF-8 text; save it as "CSV UTF-8" and try again.'


class ImportError_(Exception):
    """The file as a whole cannot be imported (no email column, not CSV, bad option)."""


class ImportRefused(Exception):
    """Some rows are invalid and ``skip_invalid`` was not given; nothing was written."""

    def __init__(self, report: ImportReport):
        super().__init__(f"{report.counts['invalid']} invalid rows; nothing was imported")
        self.report = report


@dataclass(frozen=True)
class RowResult:
    line: int  # line number in the file (the header is line 1)
    email: str
    outcome: str
    message: str = ""


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        c = Counter({k: 0 for k in OUTCOMES})
        c.update(r.outcome for r in self.rows)
        return c


def map_headers(headers: Iterable[str]) -> tuple[dict[str, int], list[str]]:
    """Our field -> column index, and the headers we do not use."""
    mapping: dict[str, int] = {}
    ignored = []
    for i, h in enumerate(headers):
        # "E-mail Address", "email_address" and "EmailAddress" are all one column.
        key = re.sub(r"[^a-z0-9]", "", (h or "").lower())
        ours = _ALIASES.get(key)
        if ours and ours not in mapping:
            mapping[ours] = i
        else:
            ignored.append(h)
    if "email" not in mapping:
        raise ImportError_("The file has no email column (a header named 'email' is needed).")
    return mapping, ignored


def _lookup(rows, *attrs) -> dict[str, object]:
    table = {}
    for row in rows:
        for attr in attrs:
            table[getattr(row, attr).casefold()] = row
    return table


PROGRESS_EVERY = 1000  # rows between two calls of an import's progress callback


def import_csv(
    session: Session,
    stream: TextIO,
    *,
    source: str,
    basis: str,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import the CSV in ``stream``; see the module docstring for the contract.

    ``progress(rows_checked)`` is called every :data:`PROGRESS_EVERY` rows while rows are
    checked, before anything is written (so it may report through another connection
    without waiting on this transaction's locks), and once more before the writing starts.
    """
    if basis not in BASES:
        raise ImportError_(f"The consent basis must be one of: {', '.join(BASES)}.")
    source = clean_text("source", source, 100)
    try:
        reader = csv.reader(stream)
        headers = next(reader, None)
    except UnicodeDecodeError:
        raise ImportError_(_NOT_UTF8) from None
    except csv.Error as exc:
        raise ImportError_(f"This is not a readable CSV file ({exc}).") from None
    if headers is None:
        raise ImportError_("The file is empty.")
    cols, ignored = map_headers(headers)
    report = ImportReport(ignored_columns=ignored)

    topics = _lookup(session.scalars(select(Topic)), "slug", "name")
    partners = _lookup(session.scalars(select(Partner).where(Partner.active)), "slug", "name")
    org_types = {}
    for value, label in ORGANISATION_TYPES:
        org_types[value] = org_types[label.casefold()] = value
    existing = {e.lower(): i for e, i in session.execute(select(Subscriber.email, Subscriber.id))}
    suppressed = suppression.SuppressedSet(session)

    def cell(row, name):
        i = cols.get(name)
        return spreadsheet_value(row[i].strip()) if i is not None and i < len(row) else ""

    seen: set[str] = set()
    new_rows: list[dict] = []
    new_choices: list[tuple[list[int], list[int]]] = []
    updates: list[dict] = []
    line = 1
    try:
        for row in reader:
            line += 1
            if progress is not None and line % PROGRESS_EVERY == 0:
                progress(len(report.rows))
            if not any(c.strip() for c in row):
                continue  # blank line
            raw = cell(row, "email")
            try:
                address = email_address("email", raw)
                name = clean_text("name", cell(row, "name"), 120)
                org = clean_text("organisation", cell(row, "organisation"), 200)
                raw_type = cell(row, "organisation_type")
                org_type = org_types.get(raw_type.casefold(), None) if raw_type else ""
                if org_type is None:
                    raise InvalidInput("organisation_type", f"unknown organisation type {raw_type!r}.")
                code = clean_practice_code(cell(row, "practice_code"), org_type)
                t_ids = _resolve(cell(row, "topics"), topics, "topic")
                p_ids = _resolve(cell(row, "partners"), partners, "partner")
            except InvalidInput as err:
                report.rows.append(RowResult(line, raw, "invalid", f"{err.field}: {err.message}"))
                continue
            key = address.lower()
            if key in seen:
                report.rows.append(RowResult(line, address, "duplicate", "appears earlier in the file"))
                continue
            seen.add(key)
            if address in suppressed:
                report.rows.append(
                    RowResult(line, address, "suppressed", "on the suppression list; only the person can opt in again")
                )
                continue
            sub_id = existing.get(key)
            if sub_id is not None:
                values = {"id": sub_id}
                for k, v in (
                    ("name", name),
                    ("organisation", org),
                    ("organisation_type", org_type),
                    ("practice_code", code),
                ):
                    if v:
                        values[k] = v
                updates.append(values)
                report.rows.append(
                    RowResult(line, address, "updated", "profile updated; the person's own choices are kept")
                )
                continue
            if not t_ids and not p_ids:
                report.rows.append(RowResult(line, address, "invalid", f"topics: {NO_CHOICE_MESSAGE}"))
                continue
            new_rows.append(
                {
                    "email": address,
                    "name": name,
                    "organisation": org,
                    "organisation_type": org_type,
                    "practice_code": code,
                }
            )
            new_choices.append((t_ids, p_ids))
            report.rows.append(RowResult(line, address, "created"))
    except UnicodeDecodeError:
        raise ImportError_(f"Line {line + 1}: {_NOT_UTF8}") from None
    except csv.Error as exc:
        raise ImportError_(f"Line {line} cannot be read as CSV ({exc}).") from None

    if report.counts["invalid"] and not skip_invalid:
        raise ImportRefused(report)
    if progress is not None:
        progress(len(report.rows))
    _write(session, new_rows, new_choices, updates, source=source, basis=basis)
    return report


def _resolve(value: str, table: dict, what: str) -> list[int]:
    ids = []
    for part in _SPLIT.split(value) if value else []:
        if not part:
            continue
        row = table.get(part.casefold())
        if row is None:
            raise InvalidInput(f"{what}s", f"unknown {what} {part!r}.")
        ids.append(row.id)
    return sorted(set(ids))


def _write(session: Session, new_rows, new_choices, updates, *, source: str, basis: str) -> None:
    now = utcnow()
    detail = f"basis={basis}; import={source}"
    event = {
        "kind": "imported",
        "source": "import",
        "wording_version": CONSENT_WORDING_VERSION,
        "ip": None,
        "at": now,
        "detail": detail,
    }
    postgres = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(new_rows), _BATCH):
        chunk = new_rows[start : start + _BATCH]
        rows = [
            {
                **r,
                "status": CONFIRMED,
                "token_version": 1,
                "created_at": now,
                "requested_at": now,
                "confirmed_at": now,
                "consent_basis": basis,
                "unsubscribed_at": None,
                "paused_until": None,
            }
            for r in chunk
        ]
        if postgres:
            ids = _reserve_ids(session, len(rows))
            for i, r in zip(ids, rows, strict=True):
                r["id"] = i
            _insert_values(session, Subscriber.__table__, rows)
        else:
            ids = list(session.scalars(insert(Subscriber).returning(Subscriber.id, sort_by_parameter_order=True), rows))
        choices = new_choices[start : start + _BATCH]
        t_rows = [{"subscriber_id": i, "topic_id": t} for i, (ts, _) in zip(ids, choices, strict=True) for t in ts]
        p_rows = [{"subscriber_id": i, "partner_id": p} for i, (_, ps) in zip(ids, choices, strict=True) for p in ps]
        _insert_values(session, subscriber_topics, t_rows)
        _insert_values(session, subscriber_partners, p_rows)
        _insert_values(session, ConsentEvent.__table__, [{**event, "subscriber_id": i} for i in ids])
    for start in range(0, len(updates), _BATCH):
        chunk = updates[start : start + _BATCH]
        # Bulk UPDATE by primary key, grouped by which columns each row sets.
        by_keys: dict[tuple, list[dict]] = {}
        for u in chunk:
            by_keys.setdefault(tuple(sorted(u)), []).append(u)
        for group in by_keys.values():
            if len(group[0]) > 1:
                session.execute(update(Subscriber), group)
        _insert_values(
            session,
            ConsentEvent.__table__,
            [
                {**event, "kind": "changed", "detail": f"profile updated by import={source}", "subscriber_id": u["id"]}
                for u in chunk
            ],
        )


def _reserve_ids(session: Session, n: int) -> list[int]:
    """``n`` fresh subscriber ids from the table's sequence (PostgreSQL)."""
    return list(
        session.scalars(
            text("SELECT nextval(pg_get_serial_sequence('subscribers', 'id')) FROM generate_series(1, :n)"), {"n": n}
        )
    )


def _insert_values(session: Session, table, rows: list[dict]) -> None:
    """Bulk INSERT: COPY on PostgreSQL (an executemany would cost psycopg one exchange
    per row), the driver's executemany on SQLite."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        cols = list(rows[0])
        # The driver connection of this session's transaction: the COPY is part of it.
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row([r[c] for c in cols])
        return
    session.execute(insert(table), rows)  # sqlite3's executemany: in-process, no round trips
