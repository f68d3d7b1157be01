"""Periodic clean-up the scheduler (or `mailer subscribers purge-unconfirmed`) runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.db import utcnow
from subscribers.models import PENDING, UNSUBSCRIBED, Subscriber
from subscribers.service import record


def purge_unconfirmed(session: Session, older_than_days: int, *, now: datetime | None = None) -> int:
    """Clear subscription requests still unconfirmed ``older_than_days`` after they were
    made; returns how many.

    A request from someone who never confirmed is deleted with its choices and ledger
    (they never consented to anything). Someone who was subscribed before, left, and
    asked to come back without confirming keeps their history: they return to
    ``unsubscribed`` (still suppressed, the request dropped) with a ``request-expired``
    ledger event.
    """
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    stale = select(Subscriber).where(Subscriber.status == PENDING, Subscriber.requested_at < cutoff)
    returning = list(session.scalars(stale.where(Subscriber.confirmed_at.is_not(None))))
    for sub in returning:
        sub.status, sub.pending_request = UNSUBSCRIBED, None
        record(session, sub, "request-expired", "scheduler", None)
    ids = list(
        session.scalars(
            select(Subscriber.id).where(
                Subscriber.status == PENDING, Subscriber.requested_at < cutoff, Subscriber.confirmed_at.is_(None)
            )
        )
    )
    for start in range(0, len(ids), 500):
        # Core delete: the ON DELETE CASCADE foreign keys remove choices and ledger rows.
        session.execute(
            delete(Subscriber).where(Subscriber.id.in_(ids[start : start + 500])),
            execution_options={"synchronize_session": False},
        )
    return len(ids) + len(returning)
