"""Writing accepted messages down, and processing them once.

The receiver calls :func:`accept` and commits before it answers 250, so an accepted
message survives any crash after that; the queue then carries only the row's id.
:func:`process` is idempotent: it claims the row (``received -> processed``) in the same
transaction as the handler's changes, so a second run, or a second worker, finds nothing
to do, and a run that fails leaves the row ``received`` for the next try.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.inbound.models import FAILED, PROCESSED, RECEIVED, InboundMessage
from mailer.inbound.parse import Malformed, automatic, parse
from mailer.inbound.routing import Arrival, InboundError, Route, Router


def accept(session: Session, route: Route, mail_from: str, raw: bytes) -> int:
    """Store ``raw`` as accepted for ``route``; the new row's id (the caller commits)."""
    row = InboundMessage(
        route=route.kind,
        recipient=route.address[:320],
        mail_from=mail_from[:320],
        size=len(raw),
        raw=raw,
        status=RECEIVED,
    )
    session.add(row)
    session.flush()
    return row.id


def unprocessed(session: Session, older_than_seconds: float = 0) -> list[int]:
    """Ids of accepted messages still waiting, oldest first (to enqueue again after a
    crash or a lost queue message; processing twice is harmless)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return list(
        session.scalars(
            select(InboundMessage.id)
            .where(InboundMessage.status == RECEIVED, InboundMessage.received_at <= cutoff)
            .order_by(InboundMessage.id)
        )
    )


def process(session: Session, router: Router, message_id: int) -> str | None:
    """Run the handler of message ``message_id``; its outcome, or None when there is
    nothing to do (already processed or failed, or no such row).

    Raises :class:`InboundError` when the message cannot be handled: roll back, then
    record it with :func:`fail`. Any other exception is trouble worth a retry.
    """
    claimed = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message_id, InboundMessage.status == RECEIVED)
        .values(status=PROCESSED, processed_at=utcnow())
    ).rowcount
    if not claimed:
        return None
    row = session.get(InboundMessage, message_id)
    kind = router.kind(row.route)
    try:
        message = parse(row.raw)
    except Malformed as err:  # checked before it was accepted; a row edited since?
        raise InboundError(f"malformed: {err}") from None
    route = kind.match(session, row.recipient)
    if route is None:  # e.g. the reader replaced their links since the message arrived
        raise InboundError("the address no longer names anything")
    arrival = Arrival(message, row.raw, row.mail_from, automatic(message, row.mail_from), message_id=row.id)
    outcome = kind.handle(session, route, arrival)
    row.outcome, row.raw, row.mail_from = outcome[:200], b"", ""
    return outcome


def fail(session: Session, message_id: int, reason: str) -> None:
    """Record that message ``message_id`` was refused by its handler (kept for a look)."""
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message_id, InboundMessage.status == RECEIVED)
        .values(status=FAILED, processed_at=utcnow(), error=reason[:500])
    )
