"""CSV import of subscribers: header-mapped, all-or-nothing, with a report for every row.

Columns are found by header name (``email`` is required; ``name``, ``organisation``,
``organisation_type``, ``practice_code``, ``topics`` and ``partners`` are optional, with
common spellings accepted). Topics and partners are slugs or names separated by ``;``.
Each row ends up ``created``, ``updated``, ``duplicate`` (seen earlier in the file),
``suppressed`` (on the suppression list: never brought back by an import) or ``invalid``.

The caller owns the transaction: :func:`import_csv` raises :class:`ImportRefused` (after
writing nothing) when any row is invalid unless ``skip_invalid`` is set, so an import is
either whole or absent. Rows are written with bulk statements (on PostgreSQL while the file is
still being read, see :class:`_Writer`): 100,000 rows take seconds.
"""

from __future__ import annotations

import csv
import queue
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from sqlalchemy import Engine, select, update
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
_FIELDS = ("email", "name", "organisation", "organisation_type", "practice_code", "topics", "partners")
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

    # Column index of each field we read (absent fields read as "").
    where = [cols.get(name) for name in _FIELDS]
    width = max(i for i in where if i is not None) + 1

    def cells(row: list[str]) -> list[str]:
        if len(row) < width:
            row = row + [""] * (width - len(row))
        out = []
        for i in where:
            v = "" if i is None else row[i].strip()
            out.append(spreadsheet_value(v) if v[:1] == "'" else v)
        return out

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
    writer = _Writer(session, {"at": now, "basis": basis, "row": event})
    resolved: dict[tuple[str, str], list[int]] = {}  # the same few topic/partner cells recur

    def choices(value: str, table: dict, what: str) -> list[int]:
        key = (what, value)
        ids = resolved.get(key)
        if ids is None:
            ids = resolved[key] = _resolve(value, table, what)
        return ids

    seen: set[str] = set()
    updates: list[dict] = []
    invalid = 0
    line = 1
    try:
        try:
            for row in reader:
                line += 1
                if progress is not None and line % PROGRESS_EVERY == 0:
                    progress(len(report.rows))
                if not any(c.strip() for c in row):
                    continue  # blank line
                raw, raw_name, raw_org, raw_type, raw_code, raw_topics, raw_partners = cells(row)
                try:
                    address = email_address("email", raw)
                    name = clean_text("name", raw_name, 120)
                    org = clean_text("organisation", raw_org, 200)
                    org_type = org_types.get(raw_type.casefold(), None) if raw_type else ""
                    if org_type is None:
                        raise InvalidInput("organisation_type", f"unknown organisation type {raw_type!r}.")
                    code = clean_practice_code(raw_code, org_type)
                    t_ids = choices(raw_topics, topics, "topic")
                    p_ids = choices(raw_partners, partners, "partner")
                except InvalidInput as err:
                    report.rows.append(RowResult(line, raw, "invalid", f"{err.field}: {err.message}"))
                    invalid += 1
                    if not skip_invalid:
                        writer.abandon()  # refused whatever follows: stop writing now
                    continue
                key = address.lower()
                if key in seen:
                    report.rows.append(RowResult(line, address, "duplicate", "appears earlier in the file"))
                    continue
                seen.add(key)
                if address in suppressed:
                    report.rows.append(
                        RowResult(
                            line, address, "suppressed", "on the suppression list; only the person can opt in again"
                        )
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
                    invalid += 1
                    if not skip_invalid:
                        writer.abandon()
                    continue
                writer.add(
                    {
                        "email": address,
                        "name": name,
                        "organisation": org,
                        "organisation_type": org_type,
                        "practice_code": code,
                    },
                    t_ids,
                    p_ids,
                )
                report.rows.append(RowResult(line, address, "created"))
        except UnicodeDecodeError:
            raise ImportError_(f"Line {line + 1}: {_NOT_UTF8}") from None
        except csv.Error as exc:
            raise ImportError_(f"Line {line} cannot be read as CSV ({exc}).") from None
        if invalid and not skip_invalid:
            raise ImportRefused(report)
        if progress is not None:
            progress(len(report.rows))
        writer.finish()
    except BaseException:
        writer.abandon()
        raise
    _write_updates(session, writer.target, updates, event, source)
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


class _Target:
    """Where the bulk writes go: the driver connection of the session's transaction.

    Bulk rows skip SQLAlchemy's per-row statement processing (most of an import's time
    once the parsing is done); values pass through each column type's own bind processor,
    so they are stored exactly as the ORM would store them.
    """

    def __init__(self, session: Session):
        self.dialect = session.get_bind().dialect
        self.postgres = self.dialect.name == "postgresql"
        # The driver connection of this session's transaction: the writes are part of it.
        self.raw = session.connection().connection.driver_connection
        self._processors: dict[tuple[str, str], object] = {}

    def processor(self, table, column: str):
        key = (table.name, column)
        if key not in self._processors:
            self._processors[key] = table.c[column].type._cached_bind_processor(self.dialect)
        return self._processors[key]


class _Writer:
    """Writes the new subscribers (with their choices and consent events) in batches.

    On PostgreSQL the batches are written by a second thread while the file is still being
    read, inside a savepoint: the server's work (indexes, foreign-key checks) then overlaps
    the parsing instead of following it, and :meth:`abandon` rolls the savepoint back so a
    refused import still leaves nothing behind. The reading thread also takes each batch's
    ids and turns it into COPY text (:meth:`_copy_text`), so the writing thread only streams
    it: the server, not Python, is then what the import waits for. On SQLite (in-process,
    one writer at a time) the batches are kept and written by :meth:`finish`.
    """

    def __init__(self, session: Session, event: dict):
        self.target = _Target(session)
        self.event = event
        self.pending: list[tuple[dict, list[int], list[int]]] = []
        self.kept: list[list[tuple[dict, list[int], list[int]]]] = []
        self._savepoint = None
        self._thread = None
        self._ids = None
        self._error: BaseException | None = None
        self._abandoned = False
        if self.target.postgres:
            self._savepoint = session.begin_nested()
            self._ids = _SubscriberIds(session, self.target)
            self._queue: queue.Queue = queue.Queue(maxsize=3)
            self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
            self._thread.start()

    def add(self, row: dict, topic_ids: list[int], partner_ids: list[int]) -> None:
        if self._abandoned:
            return
        self.pending.append((row, topic_ids, partner_ids))
        if len(self.pending) >= _BATCH:
            self._hand_over()

    def _hand_over(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        if self._thread is None:
            self.kept.append(batch)
            return
        if self._error is not None:
            raise self._error
        self._queue.put(self._copy_text(batch, self._ids.take(len(batch))))

    def _run(self) -> None:
        while True:
            payloads = self._queue.get()
            if payloads is None:
                return
            if self._error is not None or self._abandoned:
                continue  # drain: the main thread will raise or roll back
            try:
                for statement, text in payloads:
                    _copy_rows(self.target, statement, text)
            except BaseException as exc:  # handed to the main thread by finish()
                self._error = exc

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._ids is not None:
            self._ids.close()

    def abandon(self) -> None:
        """Write nothing more and undo what was written (the import is refused or failed)."""
        self._abandoned = True
        self.pending, self.kept = [], []
        self._stop()
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.rollback()

    def finish(self) -> None:
        """Write what is left; raises the first error a write met."""
        if self._thread is None:
            self._hand_over()
            for batch in self.kept:
                self._write(batch)
            self.kept = []
            return
        self._hand_over()
        self._stop()
        if self._error is not None:
            raise self._error
        self._savepoint.commit()

    def _fixed(self) -> dict:
        """The columns every subscriber an import creates shares (besides the row's own)."""
        now = self.event["at"]
        return {
            "status": CONFIRMED,
            "token_version": 1,
            "created_at": now,
            "requested_at": now,
            "confirmed_at": now,
            "consent_basis": self.event["basis"],
            "unsubscribed_at": None,
            "paused_until": None,
        }

    def _new_people(self, batch) -> list[dict]:
        """The subscribers rows of ``batch``, every column the import sets."""
        fixed = self._fixed()
        return [{**r, **fixed} for r, _, _ in batch]

    def _copy_text(self, batch, ids: list[int]) -> list[tuple[str, str]]:
        """``batch`` under ``ids`` as (COPY statement, rows in COPY's text format), one per table."""
        fixed, event = self._fixed(), self.event["row"]
        # The columns every row of a table shares, formatted once a batch.
        fixed_text = "\t".join(_copy_field(v) for v in fixed.values())
        event_text = "\t".join(_copy_field(v) for v in event.values())
        return [
            (
                _copy_statement(Subscriber.__table__, ["id", *batch[0][0], *fixed]),
                "".join(
                    [
                        "\t".join([str(i), *[_copy_field(v) for v in r.values()], fixed_text]) + "\n"
                        for i, (r, _, _) in zip(ids, batch, strict=True)
                    ]
                ),
            ),
            (
                _copy_statement(subscriber_topics, ["subscriber_id", "topic_id"]),
                "".join([f"{i}\t{t}\n" for i, (_, ts, _) in zip(ids, batch, strict=True) for t in ts]),
            ),
            (
                _copy_statement(subscriber_partners, ["subscriber_id", "partner_id"]),
                "".join([f"{i}\t{p}\n" for i, (_, _, ps) in zip(ids, batch, strict=True) for p in ps]),
            ),
            (
                _copy_statement(ConsentEvent.__table__, ["subscriber_id", *event]),
                "".join([f"{i}\t{event_text}\n" for i in ids]),
            ),
        ]

    def _write(self, batch) -> None:
        """``batch`` on SQLite, through the driver's executemany."""
        target = self.target
        rows = self._new_people(batch)
        ids = _sqlite_ids(target, len(rows))
        for i, r in zip(ids, rows, strict=True):
            r["id"] = i
        _insert_values(target, Subscriber.__table__, rows)
        _insert_values(
            target,
            subscriber_topics,
            [{"subscriber_id": i, "topic_id": t} for i, (_, ts, _) in zip(ids, batch, strict=True) for t in ts],
        )
        _insert_values(
            target,
            subscriber_partners,
            [{"subscriber_id": i, "partner_id": p} for i, (_, _, ps) in zip(ids, batch, strict=True) for p in ps],
        )
        event = self.event["row"]
        _insert_values(target, ConsentEvent.__table__, [{**event, "subscriber_id": i} for i in ids])


class _SubscriberIds:
    """Fresh subscriber ids on PostgreSQL, taken by the reading thread while the writing
    thread streams earlier batches. They come from the table's sequence through a
    connection of the import's own when the session is bound to an engine (else through
    the session's, waiting for the stream): a sequence never hands a value out twice, so
    ids taken this way are the import's whatever its transaction does (a refused import
    leaves a gap in the numbering, as any rollback does)."""

    def __init__(self, session: Session, target: _Target):
        bind = session.get_bind()
        self._own = bind.connect() if isinstance(bind, Engine) else None
        self._raw = self._own.connection.driver_connection if self._own is not None else target.raw

    def take(self, n: int) -> list[int]:
        with self._raw.cursor() as cur:
            cur.execute("SELECT nextval(pg_get_serial_sequence('subscribers', 'id')) FROM generate_series(1, %s)", (n,))
            ids = [r[0] for r in cur.fetchall()]
        if self._own is not None:
            self._raw.commit()  # nothing to keep but the ids; end the transaction nextval opened
        return ids

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None


# COPY's text format: NULL is \N, and a backslash, tab or line end in a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value) -> str:
    """``value`` as one field of a row in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _copy_rows(target: _Target, statement: str, text: str) -> None:
    """One table's rows of a batch, already in COPY's text format, on PostgreSQL."""
    with target.raw.cursor() as cur, cur.copy(statement) as copy:
        copy.write(text)


def _copy_statement(table, columns: list[str]) -> str:
    return f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"


def _write_updates(session: Session, target: _Target, updates: list[dict], event: dict, source: str) -> None:
    """Profile changes of people already subscribed, and their consent events."""
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
            target,
            ConsentEvent.__table__,
            [
                {**event, "kind": "changed", "detail": f"profile updated by import={source}", "subscriber_id": u["id"]}
                for u in chunk
            ],
        )


def _sqlite_ids(target: _Target, n: int) -> list[int]:
    """``n`` fresh subscriber ids on SQLite: past the highest id once this transaction
    holds the write lock (no other writer can take them until it ends). On PostgreSQL
    :class:`_SubscriberIds` takes them from the table's sequence."""
    if not target.raw.in_transaction:
        target.raw.execute("BEGIN IMMEDIATE")  # the write lock now, before reading max(id)
    top = target.raw.execute("SELECT coalesce(max(id), 0) FROM subscribers").fetchone()[0]
    return list(range(top + 1, top + 1 + n))


def _insert_values(target: _Target, table, rows: list[dict]) -> None:
    """Bulk INSERT: COPY on PostgreSQL (an executemany would cost psycopg one exchange
    per row), the driver's executemany on SQLite (in-process, no round trips)."""
    if not rows:
        return
    cols = list(rows[0])
    if target.postgres:
        with target.raw.cursor() as cur:
            with cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row([r[c] for c in cols])
        return
    values = [[r[c] for c in cols] for r in rows]
    for i, c in enumerate(cols):
        process = target.processor(table, c)
        if process is None:
            continue
        done: dict = {}  # bulk rows repeat a few values (the import's one timestamp)
        for v in values:
            x = v[i]
            if x is not None:
                y = done.get(x)
                v[i] = done.setdefault(x, process(x)) if y is None else y
    target.raw.executemany(
        f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values
    )
