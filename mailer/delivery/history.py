"""What the ledger says about one subscriber: the editions sent to them and how each went.

Read by the preference centre's "download my data" (with :func:`subscribers.rights.export_data`,
which knows nothing of deliveries).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.delivery.models import Delivery
from mailer.digest.models import Edition


def deliveries_of(session: Session, subscriber_id: int) -> list[dict]:
    """Every delivery to ``subscriber_id``, oldest edition first, as JSON-ready
    ``{"edition": period, "status": ..., "sent_at": ISO time or None}``."""
    rows = session.execute(
        select(Edition.period, Delivery.status, Delivery.sent_at)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Edition.period)
    )
    return [
        {"edition": period, "status": status, "sent_at": sent_at.isoformat() if sent_at else None}
        for period, status, sent_at in rows
    ]


def recent_deliveries(session: Session, subscriber_id: int, limit: int = 24) -> list:
    """The newest ``limit`` deliveries to ``subscriber_id`` (two years of monthly editions),
    newest first, as rows of ``id, period, status, attempts, error, sent_at``."""
    return session.execute(
        select(Delivery.id, Edition.period, Delivery.status, Delivery.attempts, Delivery.error, Delivery.sent_at)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Edition.period.desc())
        .limit(limit)
    ).all()
