"""Sending a batch of deliveries: claim, compose, hand over, record.

The ledger decides, not the queue. A delivery is claimed (``pending -> sending``) and that
claim is committed before the message leaves, so a redelivered queue message finds nothing
to claim and sends nothing twice. Each outcome is committed as soon as it is known.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.db import Database, utcnow
from mailer.delivery.models import FAILED, PENDING, SENDING, SENT, SKIPPED, Delivery
from mailer.delivery.transport import PermanentFailure, TransientFailure, Transport
from mailer.digest.compose import PreparedEdition, compose, prepare_edition
from mailer.digest.models import SENDING as EDITION_SENDING
from mailer.digest.models import SENT as EDITION_SENT
from mailer.digest.models import Edition
from mailer.settings import Settings
from subscribers.service import recipients

_prepared: dict[tuple[int, object], PreparedEdition] = {}
_prepared_lock = threading.Lock()


def prepared_for(session: Session, edition: Edition, settings: Settings) -> PreparedEdition:
    """The edition's render, made once per process (keyed by build time and the editor's
    fields, so a rebuild or an edit renders afresh) and shared by all worker threads."""
    key = (edition.id, edition.built_at, edition.subject, edition.preheader, edition.intro,
           edition.featured_item_id)
    with _prepared_lock:
        if key not in _prepared:
            _prepared.clear()  # one edition sends at a time; do not hoard renders
            _prepared[key] = prepare_edition(session, edition, settings)
        return _prepared[key]


def claim(session: Session, delivery_ids: list[int]) -> list[int]:
    """Mark the still-pending ones among ``delivery_ids`` as sending; return their ids."""
    return list(session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == PENDING)
        .values(status=SENDING, attempts=Delivery.attempts + 1, updated_at=utcnow())
        .returning(Delivery.id)))


def record(session: Session, delivery_id: int, status: str, error: str | None = None) -> None:
    values = {"status": status, "error": error, "updated_at": utcnow()}
    if status == SENT:
        values["sent_at"] = utcnow()
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def finish_if_done(session: Session, edition_id: int) -> bool:
    """Mark the edition sent once no delivery is pending or sending."""
    busy = session.scalar(select(Delivery.id).where(
        Delivery.edition_id == edition_id, Delivery.status.in_((PENDING, SENDING))).limit(1))
    if busy is not None:
        return False
    session.execute(update(Edition).where(Edition.id == edition_id, Edition.status == EDITION_SENDING)
                    .values(status=EDITION_SENT, sent_at=utcnow()))
    return True


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: list[int] = field(default_factory=list)


def deliver_batch(db: Database, transport: Transport, settings: Settings,
                  delivery_ids: list[int]) -> BatchResult:
    """Send the deliveries in ``delivery_ids`` that are still pending.

    Transient failures put the delivery back to ``pending`` and are listed in
    ``BatchResult.retry`` for the caller to schedule; permanent ones end ``failed``.
    """
    result = BatchResult()
    with db.transaction() as s:
        claimed = claim(s, delivery_ids)
    if not claimed:
        return result
    with db.transaction() as s:
        rows = s.execute(select(Delivery.id, Delivery.subscriber_id, Delivery.edition_id)
                         .where(Delivery.id.in_(claimed))).all()
        edition_id = rows[0].edition_id
        prepared = prepared_for(s, s.get(Edition, edition_id), settings)
        people = {r.id: r for r in recipients(s, [r.subscriber_id for r in rows])}
    try:
        for row in rows:
            person = people.get(row.subscriber_id)
            envelope = compose(prepared, person) if person else None
            if envelope is None:
                # Unsubscribed, or chose other topics, since the fan-out: nothing to send.
                with db.transaction() as s:
                    record(s, row.id, SKIPPED)
                result.skipped += 1
                continue
            try:
                transport.send(envelope.sender, envelope.recipient, envelope.data)
            except PermanentFailure as exc:
                with db.transaction() as s:
                    record(s, row.id, FAILED, str(exc)[:500])
                result.failed += 1
            except TransientFailure as exc:
                with db.transaction() as s:
                    record(s, row.id, PENDING, str(exc)[:500])
                result.retry.append(row.id)
            else:
                with db.transaction() as s:
                    record(s, row.id, SENT)
                result.sent += 1
    finally:
        transport.close()
    with db.transaction() as s:
        finish_if_done(s, edition_id)
    return result
