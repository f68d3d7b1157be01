"""Sending a batch of deliveries: claim, compose, hand over, record.

The ledger decides, not the queue. A batch (one queue message, one SMTP connection) is
worked in chunks: a chunk is claimed (``pending -> sending``) and that claim is committed
before any of its messages leaves, so a redelivered queue message finds nothing to claim
and sends nothing twice. The chunk's outcomes are then written in one bulk update.

Policy for a delivery left ``sending`` (the worker died mid-send, e.g. ``kill -9``):
we do **not** resend it. Its message may well have reached the relay (SMTP hands over in
milliseconds; the unknown window is the gap between hand-over and our write), and a
second copy of a newsletter costs the sender's reputation more than one person missing
one month. Once its lease expires (``SEND_LEASE_SECONDS``, longer than any batch may run)
the watchdog marks it ``unknown``: counted and shown by ``mailer edition status``, never
silently lost, and an operator may choose to send those again (``edition resend-unknown``).
At most one chunk per dead worker thread (``SEND_CHUNK_SIZE``) can end up unknown.
A batch that stops in an orderly way (an exception, a time limit) records what it knows:
messages not yet attempted go back to ``pending``; only the one in the relay's hands at
that moment becomes ``unknown``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from mailer import logs
from mailer import telemetry as events
from mailer.counters import counters_for
from mailer.db import Database, utcnow
from mailer.delivery.control_models import SendEvent
from mailer.delivery.limits import RateLimiter
from mailer.delivery.models import FAILED, OPEN, PENDING, SENDING, SENT, SKIPPED, UNKNOWN, Delivery
from mailer.delivery.suppression import record_refusal
from mailer.digest import status as edition_status
from mailer.digest.cache import prepared_editions
from mailer.digest.compose import LIST_NAME, PreparedEdition, compose
from mailer.digest.models import SENDING as EDITION_SENDING
from mailer.digest.models import Edition
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


def claim(session: Session, delivery_ids: list[int]):
    """Mark the still-pending, due ones among ``delivery_ids`` of a sending edition as
    ``sending``; return their (id, subscriber_id, edition_id, attempts) rows."""
    now = utcnow()
    sending = list(session.scalars(select(Edition.id).where(Edition.status == EDITION_SENDING)))
    if not sending:
        return []
    return session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(delivery_ids),
            Delivery.status == PENDING,
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            # Wrapped in a function so the planner finds rows by primary key: with the
            # bare column it may walk the (edition, status) index over every pending row.
            func.coalesce(Delivery.edition_id, 0).in_(sending),
        )
        .values(status=SENDING, attempts=Delivery.attempts + 1, updated_at=now)
        .returning(Delivery.id, Delivery.subscriber_id, Delivery.edition_id, Delivery.attempts)
    ).all()


def record(session: Session, delivery_id: int, status: str, error: str | None = None) -> None:
    values = {"status": status, "error": error, "updated_at": utcnow()}
    if status == SENT:
        values["sent_at"] = utcnow()
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


_BULK = (
    update(Delivery)
    .where(Delivery.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        error=bindparam("b_error"),
        attempts=bindparam("b_attempts"),
        sent_at=bindparam("b_sent_at"),
        next_attempt_at=bindparam("b_next"),
        updated_at=bindparam("b_now"),
    )
)


def record_many(session: Session, outcomes: list[dict]) -> None:
    """Write a chunk's outcomes in one executemany (pipelined by psycopg)."""
    if outcomes:
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            # Outcomes need not wait for the disk: if PostgreSQL itself crashed before
            # flushing them, the rows would stay `sending` and end `unknown`, never resent.
            # (Claims, which guard against double sending, keep the synchronous commit.)
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        conn.execute(_BULK, outcomes)


def finish_if_done(session: Session, edition_id: int) -> bool:
    """Mark the edition sent once no delivery is pending or sending."""
    busy = session.scalar(
        select(Delivery.id).where(Delivery.edition_id == edition_id, Delivery.status.in_(OPEN)).limit(1)
    )
    if busy is not None:
        return False
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

    def __init__(self, rows, settings: Settings):
        self.rows = {r.id: r for r in rows}
        self.cfg = settings.delivery
        self.now = utcnow()
        self.out: dict[int, dict] = {}
        self.trailing_failures = 0
        self.successes = 0
        self.last_error = ""
        self.refused: list[tuple[int, str, str]] = []  # (delivery, address, reply)

    def _set(self, row, status, error=None, attempts=None, next_at=None, sent=False):
        self.out[row.id] = {
            "b_id": row.id,
            "b_status": status,
            "b_error": error and error[:500],
            "b_attempts": row.attempts if attempts is None else attempts,
            "b_sent_at": utcnow() if sent else None,
            "b_next": next_at,
            "b_now": utcnow(),
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
    try:
        for start in range(0, len(ids), cfg.chunk_size):
            with db.transaction() as s:
                rows = claim(s, ids[start : start + cfg.chunk_size])
                if not rows:
                    continue
                edition_id = rows[0].edition_id
                logs.bind(edition_id=edition_id)
                prepared = prepared_for(s, s.get(Edition, edition_id), settings)
                # Only people who still receive digests: whoever unsubscribed, paused, was
                # erased or suppressed since the fan-out is missing, and skipped below.
                people = {r.id: r for r in recipients(s, [r.subscriber_id for r in rows])}
            chunk = _Chunk(rows, settings)
            in_flight, interrupted, connection_down = None, None, None
            try:
                for row in rows:
                    logs.bind(delivery_id=row.id)
                    person = people.get(row.subscriber_id)
                    if person is None:
                        chunk.skipped(row, NO_LONGER_RECEIVES)
                        continue
                    try:
                        envelope = compose(prepared, person)
                    except Exception as exc:  # this reader's copy only; the others go on
                        log.exception("delivery %s: could not compose the digest", row.id)
                        chunk.failed(row, f"could not compose this copy: {type(exc).__name__}: {exc}")
                        continue
                    if envelope is None:
                        chunk.skipped(row)  # chose other topics since the fan-out
                        continue
                    if limited:
                        limiter.acquire(person.email.rpartition("@")[2].lower())
                    in_flight = row.id
                    try:
                        outgoing.delivery(envelope, row.id)
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
                with db.transaction() as s:
                    record_many(s, outcomes)
                    for delivery_id, email, reply in chunk.refused:
                        record_refusal(s, delivery_id, email, reply)
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
            if connection_down:
                stop_at = start + cfg.chunk_size
                break
    finally:
        transport.close()
    if stop_at is not None:
        # The rest of the batch was never claimed; it goes out with the retries.
        result.retry.extend(ids[stop_at:])
    if edition_id is not None:
        with db.transaction() as s:
            finish_if_done(s, edition_id)
    return result
