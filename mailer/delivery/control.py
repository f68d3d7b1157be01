"""Operator control of a send and its progress: pause, resume, cancel, status, recovery.

Domain functions: they take a session and never commit. The CLI, the actors and (later)
the admin UI call them; :func:`progress` is what a status page shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from mailer.db import aware, utcnow
from mailer.delivery.control_models import SendEvent
from mailer.delivery.models import BOUNCED, CANCELLED, FAILED, PENDING, SENDING, SENT, UNKNOWN, Delivery
from mailer.delivery.sending import pause_edition
from mailer.digest import status
from mailer.digest.editions import EditionError, get_edition
from mailer.digest.models import SENDING as EDITION_SENDING
from mailer.digest.models import Edition

RATE_WINDOW = 60  # seconds of recent sends the rate is measured over


class ControlError(ValueError):
    """The edition is not in a state that allows this (the message of the digest layer's
    :class:`~mailer.digest.editions.EditionError`, or its state machine's refusal)."""


@contextmanager
def _refused_as_control_error() -> Iterator[None]:
    """The digest layer's refusals (no such edition, a move its state does not allow),
    raised as :class:`ControlError` for this layer's callers."""
    try:
        yield
    except EditionError as err:
        raise ControlError(str(err)) from None


def edition_by_period(session: Session, period: str) -> Edition:
    """The edition for ``period`` (the digest's one lookup), as a :class:`ControlError`."""
    with _refused_as_control_error():
        return get_edition(session, period)


def pause(session: Session, edition: Edition, by: str = "operator", reason: str = "") -> None:
    """Stop claiming new deliveries; messages already handed to the relay finish."""
    with _refused_as_control_error():
        status.check(edition, status.PAUSE)
        if not pause_edition(session, edition.id, reason or "paused by the operator", by):
            # Another process moved it on since it was loaded (its status is now current).
            raise status.EditionStateError(edition.period, edition.status, status.PAUSE)


def resume(session: Session, edition: Edition, by: str = "operator") -> int:
    """Sending again; returns how many deliveries are pending, which the caller enqueues
    after its commit (streamed from the ledger: :func:`mailer.delivery.fanout.pending_batches`).
    Backoff waits are cleared: the operator resumes because the relay is fixed."""
    with _refused_as_control_error():
        status.transition(session, edition, status.RESUME)
    session.add(SendEvent(edition_id=edition.id, kind="resumed", by=by))
    return (
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition.id, Delivery.status == PENDING)
            .values(next_attempt_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )


def cancel(session: Session, edition: Edition, by: str = "operator") -> int:
    """Cancel a draft, scheduled, sending or paused edition (the digest layer's rule) and log
    who did it. Deliveries still pending are marked cancelled (a worker that has already
    claimed one finishes it); returns how many will now never be sent."""
    with _refused_as_control_error():
        status.transition(session, edition, status.CANCEL)
    n = (
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition.id, Delivery.status == PENDING)
            .values(status=CANCELLED, updated_at=utcnow())
        ).rowcount
        or 0
    )
    session.add(SendEvent(edition_id=edition.id, kind="cancelled", detail=f"{n} not sent", by=by))
    return n


def resend_unknown(session: Session, edition: Edition, by: str = "operator") -> int:
    """The operator's choice to send again the deliveries whose fate is unknown: they go
    back to ``pending`` in one statement, whatever their number; returns how many. The
    caller enqueues the pending after its commit (streamed, as after the fan-out)."""
    with _refused_as_control_error():
        status.check(edition, status.RESEND)
    n = (
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition.id, Delivery.status == UNKNOWN)
            .values(status=PENDING, next_attempt_at=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    if n:
        with _refused_as_control_error():
            status.transition(session, edition, status.RESEND)
        session.add(SendEvent(edition_id=edition.id, kind="resent", detail=f"{n} unknown", by=by))
    return n


def waiting(session: Session, edition_id: int) -> list[tuple[int, datetime]]:
    """Pending deliveries still waiting out a retry backoff, with the time it ends."""
    return [
        tuple(r)
        for r in session.execute(
            select(Delivery.id, Delivery.next_attempt_at)
            .where(Delivery.edition_id == edition_id, Delivery.status == PENDING, Delivery.next_attempt_at > utcnow())
            .order_by(Delivery.id)
        )
    ]


STOPPED_WHILE_SENDING = "worker stopped while sending; not resent (see `edition resend-unknown`)"


def reap_stale(session: Session, edition_id: int, lease_seconds: float) -> int:
    """Take back the claims of dead workers on the edition's deliveries
    (:func:`reap_claims`); returns how many rows changed; the caller enqueues the pending
    again."""
    return reap_claims(session, Delivery, Delivery.edition_id == edition_id, lease_seconds)


def last_beat(ledger):
    """A claimed row's last heartbeat (its last change, for a claim from before heartbeats)."""
    return func.coalesce(ledger.heartbeat_at, ledger.updated_at)


def reap_claims(session: Session, ledger, scope, lease_seconds: float, stopped: str = STOPPED_WHILE_SENDING) -> int:
    """Take back the claims of dead workers among the rows of ``ledger`` (a delivery
    ledger's model: the edition's :class:`Delivery`, the groups' ``GroupDelivery``) that
    ``scope`` selects: rows ``sending`` under a claim whose heartbeat is older than
    ``lease_seconds``. Of each such claim, the lowest id (the one that may have been
    handed over: both ledgers hand a claim's rows over in id order, each outcome committed
    before the next, see :mod:`mailer.delivery.sending`) becomes ``unknown`` (its error
    ``stopped``); the claim's others were never handed over and go back to ``pending``
    (their attempt not counted). A row with no claim (from before claims had one) is
    ``unknown``. Returns how many rows changed."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    beat = last_beat(ledger)
    stale = session.execute(select(ledger.id, ledger.claim).where(scope, ledger.status == SENDING, beat < cutoff)).all()
    if not stale:
        return 0
    lowest: dict[int, int] = {}
    unknown, back = [], []
    for rid, token in stale:
        if token is None:
            unknown.append(rid)
        elif token not in lowest or rid < lowest[token]:
            lowest[token] = rid
    unknown += lowest.values()
    back = [rid for rid, token in stale if token is not None and lowest[token] != rid]
    still = (ledger.status == SENDING, beat < cutoff)  # a late heartbeat wins
    n = session.execute(
        update(ledger)
        .where(ledger.id.in_(unknown), *still)
        .values(status=UNKNOWN, updated_at=utcnow(), error=stopped)
        .execution_options(synchronize_session=False)
    ).rowcount
    if back:
        n += session.execute(
            update(ledger)
            .where(ledger.id.in_(back), *still)
            .values(status=PENDING, attempts=ledger.attempts - 1, claim=None, next_attempt_at=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
    return n


def live(session: Session, edition_id: int, lease_seconds: float) -> bool:
    """True if some worker holds a claim of the edition with a fresh heartbeat."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    return (
        session.scalar(
            select(Delivery.id)
            .where(Delivery.edition_id == edition_id, Delivery.status == SENDING, Delivery.heartbeat_at >= cutoff)
            .limit(1)
        )
        is not None
    )


def due_pending(session: Session, edition_id: int) -> bool:
    """True if a delivery of the edition is pending and due now."""
    q = select(Delivery.id).where(
        Delivery.edition_id == edition_id,
        Delivery.status == PENDING,
        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= utcnow()),
    )
    return session.scalar(q.limit(1)) is not None


@dataclass(frozen=True)
class Progress:
    """Where a send stands: what ``mailer edition status`` prints and the admin UI shows."""

    period: str
    status: str
    counts: dict[str, int]
    total: int
    sent: int
    failed: int
    pending: int  # pending + sending: still to go
    rate: float  # messages per second over the last minute
    eta_seconds: float | None
    events: list[tuple[datetime, str, str]] = field(default_factory=list)
    # Relay trouble, read from the ledger (so every process sees it): deliveries waiting
    # out a retry backoff while nothing has been sent since the first of them was put back.
    waiting_retry: int = 0
    refusing_since: datetime | None = None
    relay_answer: str = ""
    # Deliveries held by claims whose worker stopped beating (dead, presumably), the last
    # beat among them, and when a sweep may take them back (see :func:`silent_claims`).
    silent: int = 0
    silent_since: datetime | None = None
    taken_back_from: datetime | None = None
    # The send's fan-out is still adding readers (mailer.delivery.fanout): ``total`` is
    # what the ledger holds so far.
    adding_readers: bool = False

    @property
    def done(self) -> int:
        return self.total - self.pending


def progress(session: Session, edition: Edition, lease_seconds: float | None = None) -> Progress:
    """Where ``edition``'s send stands. With the service's ``lease_seconds`` it also says
    which deliveries wait for a silent worker's claims to be taken back."""
    counts = dict(
        session.execute(
            select(Delivery.status, func.count()).where(Delivery.edition_id == edition.id).group_by(Delivery.status)
        ).all()
    )
    since = utcnow() - timedelta(seconds=RATE_WINDOW)
    recent = (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.edition_id == edition.id, Delivery.status == SENT, Delivery.sent_at >= since)
        )
        or 0
    )
    first = session.scalar(
        select(func.min(Delivery.sent_at)).where(Delivery.edition_id == edition.id, Delivery.sent_at >= since)
    )
    first = aware(first)
    span = max(1.0, (utcnow() - first).total_seconds()) if first else RATE_WINDOW
    rate = recent / span if recent else 0.0
    pending = counts.get(PENDING, 0) + counts.get(SENDING, 0)
    eta = pending / rate if rate and edition.status == EDITION_SENDING else None
    trouble = relay_trouble(session, edition.id) if edition.status == EDITION_SENDING else None
    adding = edition.fanout_after is not None and edition.status == EDITION_SENDING
    if trouble is not None or adding:
        eta = None  # no rate means anything while the relay refuses; no total yet
    silent = None
    if lease_seconds is not None and counts.get(SENDING) and edition.status == EDITION_SENDING:
        silent = silent_claims(session, edition.id, lease_seconds)
    events = [
        (e.at, e.kind, e.detail)
        for e in session.scalars(select(SendEvent).where(SendEvent.edition_id == edition.id).order_by(SendEvent.id))
    ]
    return Progress(
        period=edition.period,
        status=edition.status,
        counts=counts,
        total=sum(counts.values()),
        sent=counts.get(SENT, 0),
        failed=counts.get(FAILED, 0) + counts.get(BOUNCED, 0),
        pending=pending,
        rate=rate,
        eta_seconds=eta,
        events=events,
        waiting_retry=counts.get(PENDING, 0) if trouble else 0,
        refusing_since=trouble[0] if trouble else None,
        relay_answer=trouble[1] if trouble else "",
        silent=silent[0] if silent else 0,
        silent_since=silent[1] if silent else None,
        taken_back_from=silent[1] + timedelta(seconds=lease_seconds) if silent else None,
        adding_readers=adding,
    )


def silent_claims(session: Session, edition_id: int, lease_seconds: float) -> tuple[int, datetime] | None:
    """(how many, the latest beat) of the edition's deliveries ``sending`` under claims
    whose heartbeat is older than half a lease (two beats missed: their worker stopped or
    died), else None. A sweep takes them back once the lease is out
    (:func:`reap_claims`); until then an operator sees why they wait."""
    beat = last_beat(Delivery)
    cutoff = utcnow() - timedelta(seconds=lease_seconds / 2)
    n, last = session.execute(
        select(func.count(), func.max(beat)).where(
            Delivery.edition_id == edition_id, Delivery.status == SENDING, beat < cutoff
        )
    ).one()
    return (n, aware(last)) if n else None


def relay_trouble(session: Session, edition_id: int) -> tuple[datetime, str] | None:
    """(since when, the relay's last answer) while the relay refuses or cannot be reached,
    else None. Every pending delivery then waits for the relay, backed off or not yet tried.

    It holds when deliveries wait out a retry backoff and nothing was sent since the first
    of them was put back: one greylisted address among messages that keep flowing is not
    relay trouble. Read from the ledger, so any process (CLI, web, another host) sees it.
    """
    backed_off = (Delivery.edition_id == edition_id, Delivery.status == PENDING, Delivery.next_attempt_at > utcnow())
    since = aware(session.scalar(select(func.min(Delivery.updated_at)).where(*backed_off)))
    if since is None:
        return None
    last_sent = aware(session.scalar(select(func.max(Delivery.sent_at)).where(Delivery.edition_id == edition_id)))
    if last_sent is not None and last_sent > since:
        return None
    answer = session.scalar(select(Delivery.error).where(*backed_off).order_by(Delivery.updated_at.desc()).limit(1))
    return since, (answer or "").removeprefix("not attempted: ")


def edition_progress(db, period: str, lease_seconds: float | None = None) -> Progress:
    """For the admin UI: the progress of PERIOD's edition in its own short transaction
    (``lease_seconds``: see :func:`progress`)."""
    with db.transaction() as s:
        return progress(s, edition_by_period(s, period), lease_seconds)
