"""Sending a batch of deliveries: claim, compose, hand over, record.

The ledger decides, not the queue. A batch (one queue message, one SMTP connection) is
worked in chunks: a chunk is claimed (``pending -> sending``, under a random claim number
and a heartbeat) and that claim is committed before any of its messages leaves, so a
redelivered queue message finds nothing to claim and sends nothing twice. A chunk's
messages are handed over in id order, and each outcome is committed as soon as the relay
has answered, before the next message is handed over (once the relay has taken the next
message's envelope, before any of its text: see ``before_end`` in
:mod:`mailer.mail.transport`), together with what the process's other threads commit
meanwhile (:class:`GroupCommit`).

So when a worker dies (``kill -9``), each of its claims holds at most one delivery whose
fate is unknown: the lowest id still ``sending`` (it may have reached the relay); the
claim's others were never handed over. While the worker lives, its keeper thread
refreshes the heartbeat of its claims (:func:`beat`); once a claim's heartbeat is older
than ``SEND_LEASE_SECONDS``, any worker's sweep (:func:`mailer.delivery.control.reap_stale`)
marks that one delivery ``unknown`` and returns the rest to ``pending``. We do **not**
resend an ``unknown`` one: a second copy of a newsletter costs the sender's reputation
more than one person missing one month; it is counted and shown by ``mailer edition
status``, and an operator may choose to send those again (``edition resend-unknown``).

A worker that loses the database keeps the outcomes it could not write (in memory,
bounded: :data:`backlog`) and stops handing over; its keeper writes them when the database
is back (an outcome it knows also replaces the ``unknown`` a sweep may have set meanwhile).
A worker asked to stop (:data:`stopping`, set on SIGTERM) finishes the message in the
relay's hands and returns the rest of its claim to ``pending``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import random
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailer import logs
from mailer import telemetry as events
from mailer.counters import counters_for
from mailer.db import Database, among, core, utcnow
from mailer.delivery.control_models import SendEvent
from mailer.delivery.limits import RateLimiter
from mailer.delivery.models import FAILED, OPEN, PENDING, SENDING, SENT, SKIPPED, UNKNOWN, Delivery
from mailer.delivery.suppression import record_refusal
from mailer.digest import status as edition_status
from mailer.digest.cache import prepared_editions
from mailer.digest.compose import LIST_NAME, PreparedEdition, compose
from mailer.digest.models import SENDING as EDITION_SENDING
from mailer.digest.models import Edition
from mailer.greenlets import FdWait, fd_waiter
from mailer.mail.message import MessageTemplate
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import PermanentFailure, TransientFailure, Transport
from mailer.settings import Settings
from subscribers.service import recipients

log = logging.getLogger(__name__)

# Why a delivery is skipped when recipients() no longer returns its person (it does not say
# which of these happened after the fan-out).
NO_LONGER_RECEIVES = "no longer receives digests (unsubscribed, paused, erased or suppressed since the fan-out)"


def prepared_for(session: Session, edition: Edition, settings: Settings) -> PreparedEdition:
    """The edition's render from the one cache (:mod:`mailer.digest.cache`: made once per
    process and version, shared by all worker threads), with the mailing's own headers."""
    # Reply-To and Feedback-ID belong to sending, not to the render that web copies and
    # test sends share: a variant of the cached render.
    return prepared_editions.get(
        session,
        edition,
        settings,
        variant="mailing",
        finish=lambda prepared: dataclasses.replace(prepared, template=digest_template(settings, edition)),
    )


def feedback_id(settings: Settings, edition: Edition) -> str:
    """``Feedback-ID`` of an edition's digests (Gmail's form, ``campaign:type:sender``): the
    providers that report complaints per Feedback-ID then report them per edition."""
    return f"{edition.period}:digest:{settings.sender_domain}"


def digest_template(settings: Settings, edition: Edition) -> MessageTemplate:
    """The headers every copy of ``edition`` shares: the list headers, ``Reply-To`` to the
    editors (``REPLY_TO``, when set) and the edition's ``Feedback-ID``."""
    return MessageTemplate(
        mail_from=settings.mail_from,
        subject=edition.subject,
        list_id=settings.list_id,
        list_name=LIST_NAME,
        list_unsubscribe_mailto=settings.unsubscribe_mailto,
        reply_to=settings.reply_to,
        feedback_id=feedback_id(settings, edition),
    )


def claim(session: Session, delivery_ids: list[int], token: int | None = None):
    """Mark the still-pending, due ones among ``delivery_ids`` of a sending edition as
    ``sending`` under claim ``token`` (with a fresh heartbeat); return their (id,
    subscriber_id, edition_id, attempts) rows."""
    now = utcnow()
    # No ORM objects are involved: through the ORM these cost more than the statements.
    conn = core(session)
    sending = list(conn.execute(select(Edition.id).where(Edition.status == EDITION_SENDING)).scalars())
    if not sending:
        return []
    return conn.execute(
        update(Delivery)
        .where(
            among(session, Delivery.id, delivery_ids),
            # Status and edition are wrapped so that the primary key is the only index the
            # planner can use. With either bare it may walk the (edition, status) index
            # over every pending row: while a fan-out is still adding rows the statistics
            # say the edition has almost none. A claim of 400 then averaged 16-28 ms in
            # bench.send at 100,000 readers (pg_stat_statements), against 5.7 ms by
            # primary key in bench.send_worker.
            Delivery.status.concat("") == PENDING,
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            func.coalesce(Delivery.edition_id, 0).in_(sending),
        )
        .values(status=SENDING, attempts=Delivery.attempts + 1, updated_at=now, claim=token, heartbeat_at=now)
        .returning(Delivery.id, Delivery.subscriber_id, Delivery.edition_id, Delivery.attempts)
    ).all()


def record(session: Session, delivery_id: int, status: str, error: str | None = None) -> None:
    values = {"status": status, "error": error, "updated_at": utcnow()}
    if status == SENT:
        values["sent_at"] = utcnow()
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


# An outcome is written only while its claim still holds the row: ``sending``, or ``unknown``
# if a sweep took the claim for dead meanwhile (the worker knows better). Rows a sweep gave
# back to ``pending`` (and maybe to another claim since) are left alone.
_BULK = (
    update(Delivery)
    .where(
        Delivery.id == bindparam("b_id"),
        Delivery.claim == bindparam("b_claim"),
        or_(Delivery.status == SENDING, Delivery.status == UNKNOWN),  # no IN: executemany
    )
    .values(
        status=bindparam("b_status"),
        error=bindparam("b_error"),
        attempts=bindparam("b_attempts"),
        sent_at=bindparam("b_sent_at"),
        next_attempt_at=bindparam("b_next"),
        updated_at=bindparam("b_now"),
    )
)

# Outcomes a worker knows but could not write (the database was away), oldest first;
# bounded, so a long outage costs at most this many `unknown` rather than the memory.
BACKLOG_MAX = 100_000
backlog: deque[dict] = deque(maxlen=BACKLOG_MAX)
_backlog_lock = threading.Lock()

# Set when the process is asked to stop (SIGTERM): each batch ends after the message in
# the relay's hands and gives the rest back.
stopping = threading.Event()


# The clock by which a process tells how long ago its claims' heartbeat was refreshed
# (tests replace it to freeze the process without sleeping). Linux's boot-time clock,
# where there is one: unlike the monotonic clock it runs on while the machine is
# suspended, as the wall-clock lease that other workers' sweeps go by does.
clock = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic
)


class LiveClaims:
    """This process's live claims (claim number -> edition, or another key the ledger's
    heartbeat groups its claims by) and when, by :data:`clock`, each was made, for the
    heartbeat; and when the last heartbeat that refreshed them all began (``beat_ok_at``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._claims: dict[int, tuple[int, float]] = {}
        self.beat_ok_at = float("-inf")

    def add(self, token: int, edition_id: int) -> None:
        """A claim just committed (its heartbeat was written with it)."""
        with self._lock:
            self._claims[token] = (edition_id, clock())

    def drop(self, token: int) -> None:
        with self._lock:
            self._claims.pop(token, None)

    @contextlib.contextmanager
    def beating(self):
        """Around a heartbeat of every live claim: once it succeeds, they count as fresh
        from when it began."""
        began = clock()
        yield
        self.beat_ok_at = began

    def unrefreshed(self, token: int, lease_seconds: float) -> float | None:
        """Seconds since claim ``token`` was last known fresh, if more than half
        ``lease_seconds``: the process stalled (a paused machine, SIGSTOP) or could not
        beat, and a sweep may soon take the claim, or has taken it, for dead and handed
        its rows to someone else. Else None."""
        with self._lock:
            made = self._claims[token][1]
        quiet = clock() - max(made, self.beat_ok_at)
        return quiet if quiet > lease_seconds / 2 else None

    def by_edition(self) -> dict[int, list[int]]:
        with self._lock:
            out: dict[int, list[int]] = {}
            for token, (edition_id, _) in self._claims.items():
                out.setdefault(edition_id, []).append(token)
            return out


live_claims = LiveClaims()


def record_many(db: Database, outcomes: list[dict], conn=None) -> None:
    """Commit outcomes (one executemany, pipelined by psycopg), or raise DBAPIError.
    ``conn``: a :class:`Recorder`'s autocommit connection (one round trip a message)."""
    if not outcomes:
        return
    if conn is not None:
        conn.execute(_BULK, outcomes[0] if len(outcomes) == 1 else outcomes)
        return
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Outcomes need not wait for the disk: if PostgreSQL itself crashed before
            # flushing them, the rows would stay `sending` and end `unknown`, never resent.
            # (Claims, which guard against double sending, keep the synchronous commit.)
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        conn.execute(_BULK, outcomes)


_OUTCOME_STATEMENT = b"mailer_delivery_outcome"
_SQLSTATE = ord("C")  # libpq's PG_DIAG_SQLSTATE
_NO_SUCH_STATEMENT = b"26000"
_LIBPQ_OK = (1, 2)  # PGRES_COMMAND_OK, PGRES_TUPLES_OK (psycopg.pq.ExecStatus)


@functools.cache
def _outcome_sql(dialect) -> tuple[bytes, tuple[str | bytes, ...]]:
    """:data:`_BULK` for libpq: its text with ``$n`` placeholders, and for each either the
    outcome's key (``b_...``) or the statement's own fixed value, already as text."""
    compiled = _BULK.compile(dialect=dialect)
    names: list[str] = []

    def number(match) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    sql = re.sub(r"%\((\w+)\)s", number, str(compiled))
    return sql.encode(), tuple(n if n.startswith("b_") else _pg_text(compiled.params[n]) for n in names)


def _pg_text(value) -> bytes | None:
    """A parameter in PostgreSQL's text form."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).replace("\x00", "").encode()  # text cannot hold NUL; a relay's reply might


def _check(result) -> None:
    """Raise the driver's error for a failed libpq result, as a cursor would."""
    if result.status not in _LIBPQ_OK:
        # psycopg only here, on failure: the PostgreSQL path of a module that runs on SQLite too.
        from psycopg import errors

        raise errors.error_from_result(result)


def _libpq(pgconn, waits: tuple[FdWait, FdWait] | None, blocking: str, sending: str, *args):
    """The result of libpq's call ``blocking`` (``prepare``, ``exec_prepared``) on ``pgconn``
    under threads; under greenlets (``waits``, :func:`mailer.greenlets.fd_waiter`) the same
    statement sent with its non-blocking twin ``sending`` and waited for through ``waits``."""
    if waits is None:
        return getattr(pgconn, blocking)(*args)
    getattr(pgconn, sending)(*args)
    return _last_result(pgconn, *waits)


def _last_result(pgconn, wait_read: FdWait, wait_write: FdWait):
    """The result of the statement just sent on ``pgconn`` (libpq in non-blocking mode, as
    psycopg leaves it), waiting with ``wait_read``/``wait_write`` (gevent's, see
    :mod:`mailer.greenlets`) where libpq's blocking call would wait inside C and stall
    every greenlet of the process. Raises the driver's ``OperationalError`` if the
    connection broke."""
    fd = pgconn.socket
    while pgconn.flush():
        wait_write(fd)
    result = None
    while True:
        pgconn.consume_input()
        while not pgconn.is_busy():
            following = pgconn.get_result()
            if following is None:
                return result
            result = following
        wait_read(fd)


class Recorder:
    """A sending thread's connection (autocommit) for its chunk's outcomes, which go to
    the database through the process's :data:`group_commit`: each commit is its own
    statement and transaction, committed without waiting for the disk (see
    :func:`record_many`). Opened lazily; after a failure the next use opens a new one."""

    def __init__(self, db: Database):
        self.db = db
        self.conn = None

    def write(self, outcomes: list[dict]) -> None:
        """Commit ``outcomes`` (with whatever other threads of the process are committing
        meanwhile), or raise ``DBAPIError``."""
        # The connection before the turn: a writer never waits for the pool while others
        # wait for it (nor does the heartbeat, see beat).
        self._open()
        group_commit.write(self, outcomes)

    def _open(self) -> None:
        if self.conn is not None:
            return
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET synchronous_commit = off")
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def write_now(self, outcomes: list[dict]) -> None:
        """Commit ``outcomes`` on this recorder's connection, in one statement."""
        self._open()
        try:
            if self.conn.dialect.name == "postgresql":
                try:
                    if len(outcomes) == 1:
                        self._write_one(outcomes[0])
                    else:
                        self._write_rows(outcomes)
                except self.conn.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it
                    raise DBAPIError.instance(None, None, exc, self.conn.dialect.loaded_dbapi.Error) from exc
            else:
                record_many(self.db, outcomes, self.conn)
        except BaseException:
            self.close()
            raise

    def _write_one(self, outcome: dict) -> None:
        """One outcome on PostgreSQL as a statement prepared on the connection and run
        through libpq (psycopg's ``pgconn``, documented for such use): 16 us of CPU where a
        cursor's execute spends 60 us in Python converting the query and its parameters,
        once per message. The statement is :data:`_BULK`, compiled once per process."""
        sql, params = _outcome_sql(self.conn.dialect)
        self._run_prepared(_OUTCOME_STATEMENT, sql, [_pg_text(outcome[p]) if isinstance(p, str) else p for p in params])

    def _write_rows(self, outcomes: list[dict]) -> None:
        """Several outcomes on PostgreSQL in one prepared statement (:data:`_ROWS_SQL`),
        given as one JSON array: a statement of four rows costs the server about 40 %
        of four single ones (``bench.send_worker``'s machine: 0.031 against 0.076 ms a row)."""
        rows = json.dumps([_json_row(o) for o in outcomes], separators=(",", ":"))
        self._run_prepared(_ROWS_STATEMENT, _ROWS_SQL, [rows.encode()])

    def _run_prepared(self, name: bytes, sql: bytes, values: list) -> None:
        """Run statement ``name`` prepared on this connection with ``values``; prepare it
        (``sql``) first if the connection has not, or the server forgot it."""
        fairy = self.conn.connection
        pgconn = fairy.dbapi_connection.pgconn
        waits = fd_waiter()  # greenlets: wait through gevent, never inside libpq
        if fairy.info.get(name):  # info lives as long as the DBAPI connection
            result = _libpq(pgconn, waits, "exec_prepared", "send_query_prepared", name, values)
            # Gone if psycopg deallocated its statements on this connection (it may, with
            # DEALLOCATE ALL): prepared again below.
            if result.error_field(_SQLSTATE) != _NO_SUCH_STATEMENT:
                _check(result)
                return
        _check(_libpq(pgconn, waits, "prepare", "send_prepare", name, sql))
        fairy.info[name] = True
        _check(_libpq(pgconn, waits, "exec_prepared", "send_query_prepared", name, values))

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if conn.dialect.name == "postgresql" and not conn.invalidated:
                conn.exec_driver_sql("RESET synchronous_commit")  # back to the pool as it came
        except DBAPIError:
            pass
        finally:
            conn.close()


_ROWS_STATEMENT = b"mailer_delivery_outcomes"
# :data:`_BULK` for a JSON array of outcomes (:func:`_json_row`), joined by primary key.
_ROWS_SQL = (
    f"UPDATE {Delivery.__tablename__} AS d SET status = v.status, error = v.error, attempts = v.attempts, "
    "sent_at = v.sent_at, next_attempt_at = v.next, updated_at = v.now "
    "FROM json_to_recordset($1::json) AS v(id integer, claim bigint, status text, error text, "
    "attempts integer, sent_at timestamptz, next timestamptz, now timestamptz) "
    f"WHERE d.id = v.id AND d.claim = v.claim AND d.status IN ('{SENDING}', '{UNKNOWN}')"
).encode()


def _json_row(outcome: dict) -> dict:
    """An outcome as an element of :data:`_ROWS_SQL`'s array."""
    sent_at, next_at = outcome["b_sent_at"], outcome["b_next"]
    return {
        "id": outcome["b_id"],
        "claim": outcome["b_claim"],
        "status": outcome["b_status"],
        "error": outcome["b_error"],
        "attempts": outcome["b_attempts"],
        "sent_at": sent_at and sent_at.isoformat(),
        "next": next_at and next_at.isoformat(),
        "now": outcome["b_now"].isoformat(),
    }


class _Ticket:
    """One thread's outcomes waiting in :class:`GroupCommit`."""

    __slots__ = ("outcomes", "written")

    def __init__(self, outcomes: list[dict]):
        self.outcomes = outcomes
        self.written = False


class GroupCommit:
    """Group commit of a process's outcomes: the outcomes its sending threads commit while
    another commit is under way are written together by the next, in one statement.

    Each thread still returns only once its own outcomes are committed, so the ledger's
    promise holds (at most one ``unknown`` a thread after ``kill -9``). The saving is the
    server's and the worker's cost of a statement (a transaction, a round trip, waking a
    backend and the worker), which on a busy 2-core machine cost more than the row
    itself: ``bench.send_worker`` measured 0.17 ms of PostgreSQL CPU a message for
    single writes. Groups grow with the load: the longer a write waits for the CPU, the
    more threads queue behind it.

    A write that fails raises in the thread that ran it (its outcomes are its caller's to
    keep, see :meth:`_Chunk.commit`); the other threads' outcomes it carried go back to
    the queue for the next writer, so each thread learns of a failure from its own try.

    :meth:`exclusive` keeps every write out meanwhile: the keeper's heartbeat, a second
    statement over many of the process's claimed rows, takes it so that the two never
    lock rows in opposite orders (PostgreSQL would abort one as a deadlock).

    ``writes`` and ``outcomes`` count statements and rows, for the benchmarks."""

    def __init__(self):
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()  # held by the one thread writing
        self.writes = 0
        self.outcomes = 0

    def write(self, recorder: Recorder, outcomes: list[dict]) -> None:
        """Commit ``outcomes``, by ``recorder`` or by another thread's; raise
        ``DBAPIError`` if this thread's own write failed."""
        ticket = _Ticket(outcomes)
        with self._queue_lock:
            self._queue.append(ticket)
        try:
            self._turn.acquire()
        except BaseException:  # interrupted while waiting: nobody is to write them now
            with self._queue_lock:
                if ticket in self._queue:
                    self._queue.remove(ticket)
            raise
        try:
            if ticket.written:
                return
            with self._queue_lock:
                group, self._queue = self._queue, []
            rows = [o for t in group for o in t.outcomes]
            try:
                recorder.write_now(rows)
            except BaseException:
                with self._queue_lock:
                    self._queue[:0] = [t for t in group if t is not ticket]
                raise
            self.writes += 1
            self.outcomes += len(rows)
            for t in group:
                t.written = True
        finally:
            self._turn.release()

    @contextlib.contextmanager
    def exclusive(self):
        """No outcome is written while this is held (see the class's docstring)."""
        with self._turn:
            yield


# Made at import: under gevent (a worker process) the patching comes first, so its locks
# are gevent's.
group_commit = GroupCommit()


def _keep(outcomes: list[dict]) -> None:
    with _backlog_lock:
        if len(backlog) + len(outcomes) > BACKLOG_MAX:
            log.error("outcome backlog full: the oldest known outcomes are dropped (they will show as unknown)")
        backlog.extend(outcomes)


def flush_backlog(db: Database) -> int:
    """Write the outcomes kept while the database was away; how many were written (0 if
    it is still away)."""
    with _backlog_lock:
        pending = list(backlog)
        if not pending:
            return 0
        try:
            record_many(db, pending)
        except DBAPIError:
            return 0
        for _ in pending:
            backlog.popleft()
    log.warning("wrote %d delivery outcomes kept while the database was unreachable", len(pending))
    return len(pending)


def beat(db: Database) -> None:
    """Refresh the heartbeat of this process's live claims, and write any backlog."""
    flush_backlog(db)
    claims = live_claims.by_edition()
    if not claims:
        return
    try:
        # Its connection first, as an outcome writer holds its own before its turn.
        with db.engine.connect() as conn:
            # Not beside an outcome write of this process: see GroupCommit.exclusive.
            with group_commit.exclusive(), live_claims.beating(), conn.begin():
                now = utcnow()
                for edition_id, tokens in live_claims.by_edition().items():
                    conn.execute(
                        update(Delivery)
                        .where(
                            Delivery.edition_id == edition_id, Delivery.status == SENDING, Delivery.claim.in_(tokens)
                        )
                        .values(heartbeat_at=now)
                    )
    except DBAPIError as exc:
        log.warning("could not refresh the heartbeat of %d claims: %s", sum(map(len, claims.values())), exc)


class DatabaseLost(Exception):
    """An outcome could not be written: the batch stops handing over (outcomes are kept)."""


def finish_if_done(session: Session, edition_id: int) -> bool:
    """Mark the edition sent once its ledger is whole (its fan-out over) and no delivery
    is pending or sending."""
    busy = session.scalar(
        select(Delivery.id).where(Delivery.edition_id == edition_id, Delivery.status.in_(OPEN)).limit(1)
    )
    if busy is not None:
        return False  # what every batch but the last finds: asked first
    if session.scalar(select(Edition.fanout_after).where(Edition.id == edition_id)) is not None:
        return False  # readers are still being added
    edition_status.transition(session, edition_id, edition_status.FINISH, quiet=True)
    return True


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base, 2*base, 4*base ... up to cap (+-20 %)."""
    return min(cap, base * 2 ** max(0, attempts - 1)) * random.uniform(0.8, 1.2)


def pause_edition(session: Session, edition_id: int, reason: str, by: str) -> bool:
    """Pause a sending edition (the breaker, or an operator). True if it was sending."""
    done = edition_status.transition(session, edition_id, edition_status.PAUSE, quiet=True)
    if done:
        session.add(
            SendEvent(
                edition_id=edition_id, kind="paused" if by != "breaker" else "breaker", detail=reason[:500], by=by
            )
        )
    return bool(done)


def breaker_key(edition_id: int) -> str:
    """Where the edition's run of consecutive failures is counted (Redis or in memory)."""
    return f"mailer:breaker:{edition_id}"


def reset_breaker(redis_url: str | None, edition_id: int) -> None:
    """Start the edition's failure streak afresh (the operator says the relay is fixed)."""
    counters_for(redis_url).reset(breaker_key(edition_id))


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    retry: list[int] = field(default_factory=list)  # ids to send again after retry_delay
    retry_delay: float = 0.0
    paused: bool = False


class _Chunk:
    """Outcomes of one claimed chunk, turned into bulk-update rows."""

    def __init__(self, rows, settings: Settings, token: int | None = None, recorder: Recorder | None = None):
        self.rows = {r.id: r for r in rows}
        self.token = token
        self.recorder = recorder
        self.unwritten: dict[int, dict] = {}  # outcomes set since the last commit, by row
        self.cfg = settings.delivery
        self.now = utcnow()
        self.out: dict[int, dict] = {}
        self.trailing_failures = 0
        self.successes = 0
        self.last_error = ""
        self.refused: list[tuple[int, str, str]] = []  # (delivery, address, reply)

    def _set(self, row, status, error=None, attempts=None, next_at=None, sent=False):
        now = utcnow()
        self.out[row.id] = self.unwritten[row.id] = {
            "b_id": row.id,
            "b_claim": self.token,
            "b_status": status,
            "b_error": error and error.replace("\x00", "")[:500],  # text cannot hold NUL; a reply might
            "b_attempts": row.attempts if attempts is None else attempts,
            "b_sent_at": now if sent else None,
            "b_next": next_at,
            "b_now": now,
        }

    def sent(self, row):
        self._set(row, SENT, sent=True)
        self.successes += 1
        self.trailing_failures = 0

    def skipped(self, row, why=None):
        self._set(row, SKIPPED, why)

    def failed(self, row, error, refused_email: str | None = None):
        self._set(row, FAILED, error)
        if refused_email:
            self.refused.append((row.id, refused_email, error))
        self.trailing_failures += 1
        self.last_error = error

    def transient(self, row, error) -> float:
        """Back to pending with backoff, or failed once the attempts are used up."""
        events.deferred()
        self.trailing_failures += 1
        self.last_error = error
        if row.attempts >= self.cfg.max_attempts:
            self._set(row, FAILED, f"gave up after {row.attempts} attempts: {error}")
            return 0.0
        delay = backoff_seconds(row.attempts, self.cfg.retry_base_seconds, self.cfg.retry_max_seconds)
        self._set(row, PENDING, error, next_at=self.now + timedelta(seconds=delay))
        return delay

    def untouched(self, row, next_at=None, error=None):
        """Claimed but never attempted: back to pending, the attempt not counted."""
        self._set(row, PENDING, error, attempts=row.attempts - 1, next_at=next_at)

    def unknown(self, row, error):
        self._set(row, UNKNOWN, error)

    def finish(self, interrupted: BaseException | None, in_flight: int | None):
        for rid, row in self.rows.items():
            if rid in self.out:
                continue
            if interrupted is not None and rid == in_flight:
                self.unknown(row, f"interrupted while sending: {type(interrupted).__name__}")
            else:
                self.untouched(row)
        return list(self.out.values())

    def commit(self, db: Database) -> None:
        """Write the outcomes not written yet, before the next hand-over. If the database
        is away they are kept (:data:`backlog`) and :class:`DatabaseLost` is raised."""
        # Only what was set since the last commit: this runs before every hand-over, so a
        # scan of the whole chunk each time would cost chunk-size squared.
        fresh, self.unwritten = list(self.unwritten.values()), {}
        if not fresh:
            return
        try:
            if self.recorder is not None:
                self.recorder.write(fresh)
            else:
                record_many(db, fresh)
        except DBAPIError as exc:
            _keep(fresh)
            raise DatabaseLost(str(exc)) from exc


def _ready(rows, people: dict, prepared: PreparedEdition, chunk: _Chunk):
    """The chunk's copies to send, in id order, as (row, person, envelope); a reader who
    no longer receives, has nothing to read, or whose copy cannot be made is recorded in
    ``chunk`` on the way (one bad copy never stops the others)."""
    for row in rows:
        person = people.get(row.subscriber_id)
        if person is None:
            chunk.skipped(row, NO_LONGER_RECEIVES)
            continue
        logs.bind(delivery_id=row.id)  # a failure's log line names this reader's delivery
        try:
            envelope = compose(prepared, person)
        except Exception as exc:  # this reader's copy only; the others go on
            log.exception("delivery %s: could not compose the digest", row.id)
            chunk.failed(row, f"could not compose this copy: {type(exc).__name__}: {exc}")
            continue
        if envelope is None:
            chunk.skipped(row)  # chose other topics since the fan-out
            continue
        yield row, person, envelope


def deliver_batch(db: Database, transport: Transport, settings: Settings, delivery_ids: list[int]) -> BatchResult:
    """Send the deliveries in ``delivery_ids`` that are still pending and due.

    Transient failures put a delivery back to ``pending`` with a backoff time; the ids to
    try again and the delay are returned in the result for the caller to schedule.
    Permanent ones end ``failed``. A long run of failures pauses the edition.
    """
    cfg = settings.delivery
    result = BatchResult()
    counters = counters_for(settings.redis_url)
    limiter = RateLimiter(counters, cfg.rate, cfg.rate_for)
    limited = bool(cfg.rate or cfg.domain_rate or cfg.domain_rates)
    outgoing = Outgoing(settings, transport)
    edition_id = None
    ids = list(delivery_ids)
    stop_at: int | None = None
    if backlog:
        flush_backlog(db)
    recorder = Recorder(db)
    try:
        for start in range(0, len(ids), cfg.chunk_size):
            if stopping.is_set():
                stop_at = start
                break
            token = secrets.randbits(62)
            with db.transaction() as s:
                # In id order: a dead claim's lowest `sending` row is the only one that
                # may have been handed over (see the module's docstring).
                rows = sorted(claim(s, ids[start : start + cfg.chunk_size], token), key=lambda r: r.id)
                if not rows:
                    continue
                edition_id = rows[0].edition_id
                live_claims.add(token, edition_id)
                logs.bind(edition_id=edition_id)
                prepared = prepared_for(s, s.get(Edition, edition_id), settings)
                # Only people who still receive digests: whoever unsubscribed, paused, was
                # erased or suppressed since the fan-out is missing, and skipped below.
                people = {r.id: r for r in recipients(s, [r.subscriber_id for r in rows])}
            chunk = _Chunk(rows, settings, token, recorder)
            in_flight, interrupted, connection_down, stopped = None, None, None, False
            ready = _ready(rows, people, prepared, chunk)
            try:
                upcoming = next(ready, None)
                while upcoming is not None:
                    row, person, envelope = upcoming
                    logs.bind(delivery_id=row.id)
                    if limited:
                        limiter.acquire(person.email.rpartition("@")[2].lower())
                    if stopping.is_set():  # asked to stop: the rest goes back to pending
                        stopped = True
                        break
                    quiet = live_claims.unrefreshed(token, cfg.lease_seconds)
                    if quiet is not None:
                        # Sending on could race a sweep that gave these rows to another
                        # worker: they go back to pending (a row a sweep took is left alone).
                        log.warning(
                            "claim of edition %s not refreshed for %.0fs (lease %gs): giving back the rest of its chunk",
                            edition_id,
                            quiet,
                            cfg.lease_seconds,
                        )
                        break
                    # The next copy is composed before this one is handed over, so the relay
                    # can be told its envelope with this one's end (one round trip a message,
                    # see mailer.mail.transport); it is handed over only after this outcome
                    # is committed. Not under rate limits, which pace each message.
                    upcoming = None if limited else next(ready, None)
                    logs.bind(delivery_id=row.id)  # composing the next one bound its id
                    in_flight = row.id
                    try:
                        outgoing.delivery(
                            envelope,
                            row.id,
                            (upcoming[2], upcoming[0].id) if upcoming else None,
                            # The previous outcome is committed before this one's text is
                            # written (may raise DatabaseLost: then this one is not handed over).
                            before_end=functools.partial(chunk.commit, db),
                        )
                    except DatabaseLost:
                        in_flight = None
                        raise
                    except PermanentFailure as exc:
                        chunk.failed(row, str(exc), person.email if exc.recipient else None)
                    except TransientFailure as exc:
                        delay = chunk.transient(row, str(exc))
                        if getattr(exc, "connection", True):
                            # The relay itself is unreachable: stop this batch, keep the rest.
                            connection_down = (delay, str(exc))
                            in_flight = None
                            break
                    else:
                        chunk.sent(row)
                    in_flight = None
                    if chunk.trailing_failures >= cfg.breaker_failures:
                        # Enough failures in a row to pause the edition (below): the rest of
                        # the chunk goes back to pending rather than failing (and, refused,
                        # being suppressed) against the same trouble.
                        break
                    if limited or upcoming is None:
                        chunk.commit(db)  # else the next send commits it, before its hand-over
                    if limited:
                        upcoming = next(ready, None)
            except BaseException as exc:
                interrupted = exc
                raise
            finally:
                logs.bind(delivery_id=None)
                next_at = error = None
                if connection_down:
                    next_at = chunk.now + timedelta(seconds=connection_down[0])
                    error = f"not attempted: {connection_down[1]}"
                    for rid, row in chunk.rows.items():
                        if rid not in chunk.out:
                            chunk.untouched(row, next_at, error)
                outcomes = chunk.finish(interrupted, in_flight)
                live_claims.drop(token)
                try:
                    chunk.commit(db)
                    if chunk.refused:
                        with db.transaction() as s:
                            for delivery_id, email, reply in chunk.refused:
                                record_refusal(s, delivery_id, email, reply)
                except (DatabaseLost, DBAPIError):
                    if interrupted is None:
                        raise
                for o in outcomes:
                    st = o["b_status"]
                    if st == SENT:
                        result.sent += 1
                    elif st == FAILED:
                        result.failed += 1
                    elif st == SKIPPED:
                        result.skipped += 1
                    elif st == UNKNOWN:
                        result.unknown += 1
                    elif st == PENDING:
                        result.retry.append(o["b_id"])
                        if connection_down:
                            result.retry_delay = max(result.retry_delay, connection_down[0])
                        elif o["b_next"] is not None:
                            delay = (o["b_next"] - chunk.now).total_seconds()
                            result.retry_delay = max(result.retry_delay, delay)
            streak = counters.add_failures(breaker_key(edition_id), chunk.trailing_failures, chunk.successes)
            if streak >= cfg.breaker_failures:
                reason = (
                    f"{streak} consecutive failures; last: {chunk.last_error}. "
                    f"Check the relay, then `mailer edition resume`."
                )
                with db.transaction() as s:
                    if pause_edition(s, edition_id, reason, "breaker"):
                        log.error("edition %s paused by the circuit breaker: %s", edition_id, reason)
                result.paused = True
                break
            if connection_down or stopped:
                stop_at = start + cfg.chunk_size
                break
    finally:
        recorder.close()
        outgoing.close()
    if stop_at is not None:
        # The rest of the batch was never claimed; it goes out with the retries.
        result.retry.extend(ids[stop_at:])
    if edition_id is not None:
        with db.transaction() as s:
            finish_if_done(s, edition_id)
    return result
