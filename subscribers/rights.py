"""Self-service data rights: a copy of everything we hold on a person, and erasure."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.db import utcnow
from subscribers import suppression
from subscribers.models import ERASED, ConsentEvent, Subscriber
from subscribers.service import pending_choices, record


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _pending(session: Session, sub: Subscriber) -> dict | None:
    requested = pending_choices(session, sub)
    if requested is None:
        return None
    return {
        "name": requested.name,
        "organisation": requested.organisation,
        "organisation_type": requested.organisation_type,
        "practice_code": requested.practice_code,
        "topics": [t.name for t in requested.topics],
        "partners": [p.name for p in requested.partners],
    }


def export_data(session: Session, sub: Subscriber, deliveries: list[dict]) -> dict:
    """Profile, choices, consent ledger and deliveries of ``sub`` as JSON-ready data.

    ``deliveries`` is the delivery history the ledger keeps for ``sub``
    (:func:`mailer.delivery.history.deliveries_of`): subscribers sit below delivery, so the
    caller brings it.
    """
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id).order_by(ConsentEvent.at, ConsentEvent.id)
    )
    return {
        "exported_at": utcnow().isoformat(),
        "profile": {
            "email": sub.email,
            "name": sub.name,
            "organisation": sub.organisation,
            "organisation_type": sub.organisation_type,
            "practice_code": sub.practice_code,
            "status": sub.status,
            "consent_basis": sub.consent_basis,
            "created_at": _iso(sub.created_at),
            "confirmed_at": _iso(sub.confirmed_at),
            "unsubscribed_at": _iso(sub.unsubscribed_at),
            "paused_until": _iso(sub.paused_until),
        },
        "choices": {
            "topics": [t.name for t in sub.topics],
            "partners": [p.name for p in sub.partners],
        },
        # An unconfirmed subscribe request for this address, as it was typed.
        "pending_request": _pending(session, sub),
        "consent_ledger": [
            {
                "at": _iso(e.at),
                "event": e.kind,
                "source": e.source,
                "wording_version": e.wording_version,
                "ip": e.ip,
                "detail": e.detail,
            }
            for e in events
        ],
        "deliveries": list(deliveries),
    }


def erase(session: Session, sub: Subscriber, *, source: str = "link") -> None:
    """Remove every piece of personal data about ``sub``.

    The address survives only as a hash on the suppression list, so no import or admin
    action can bring it back. The row itself stays, emptied, so an edition's delivery
    counts do not change; its ledger keeps the times and kinds of events (no IPs) and ends
    with ``erased``. Every link sent to the person stops working.
    """
    suppression.suppress(session, sub.email, "erased", source)
    sub.email = f"erased-{sub.id}@erased.invalid"
    sub.name = sub.organisation = sub.organisation_type = sub.practice_code = ""
    sub.topics, sub.partners, sub.pending_request = [], [], None
    sub.status, sub.paused_until = ERASED, None
    sub.token_version += 1
    session.execute(update(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id).values(ip=None, detail=""))
    record(session, sub, "erased", source, None)
