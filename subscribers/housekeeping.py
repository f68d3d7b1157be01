"""Periodic clean-up the scheduler (or `mailer subscribers purge-unconfirmed`) runs."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.db import utcnow
from subscribers.models import PENDING, Subscriber


def purge_unconfirmed(session: Session, older_than_days: int, *, now: datetime | None = None) -> int:
    """Delete subscribers still pending ``older_than_days`` after their request; returns
    how many. Their choices and ledger go with them (they never consented). A suppression
    for the address (an earlier unsubscribe) stays."""
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    ids = list(session.scalars(select(Subscriber.id).where(
        Subscriber.status == PENDING, Subscriber.requested_at < cutoff)))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        # Core delete: the ON DELETE CASCADE foreign keys remove choices and ledger rows.
        session.execute(delete(Subscriber).where(Subscriber.id.in_(chunk)),
                        execution_options={"synchronize_session": False})
    return len(ids)
