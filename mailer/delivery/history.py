"""What the ledger says: about one subscriber (the editions sent to them and how each
went), and about one edition (who got it and who did not, why).

:func:`deliveries_of` is read by the preference centre's "download my data" (with
:func:`subscribers.rights.export_data`, which knows nothing of deliveries); :func:`ledger`
by the console's ledger page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailer.db import like_escaped
from mailer.delivery.models import BOUNCED, FAILED, UNKNOWN, Delivery
from mailer.digest.models import Edition
from mailer.paging import Paged
from subscribers.models import Subscriber


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


@dataclass(frozen=True)
class LedgerRow:
    subscriber_id: int
    email: str
    name: str
    status: str
    attempts: int
    error: str | None
    sent_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class LedgerPage(Paged):
    rows: list[LedgerRow]
    total: int
    page: int
    per_page: int


def _ledger_rows():
    """The columns of a :class:`LedgerRow`, each delivery with its subscriber."""
    return select(
        Delivery.subscriber_id,
        Subscriber.email,
        Subscriber.name,
        Delivery.status,
        Delivery.attempts,
        Delivery.error,
        Delivery.sent_at,
        Delivery.updated_at,
    ).join(Subscriber, Subscriber.id == Delivery.subscriber_id)


def ledger(
    session: Session, edition_id: int, *, search: str = "", status: str = "", page: int = 1, per_page: int = 50
) -> LedgerPage:
    """One page of an edition's ledger, by subscriber address: who got it, who did not and
    why (the delivery's status and last error). ``search`` matches part of the address or
    name (any case, as text: ``%`` and ``_`` match only themselves); ``status`` one status."""
    q = _ledger_rows().where(Delivery.edition_id == edition_id)
    if status:
        q = q.where(Delivery.status == status)
    search = (search or "").strip()
    if search:
        like = f"%{like_escaped(search)}%"
        q = q.where(or_(Subscriber.email.ilike(like, escape="\\"), Subscriber.name.ilike(like, escape="\\")))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    page = max(1, page)
    rows = session.execute(q.order_by(Subscriber.email).offset((page - 1) * per_page).limit(per_page))
    return LedgerPage([LedgerRow(*r) for r in rows], total, page, per_page)


def recent_failures(session: Session, edition_id: int, limit: int = 10) -> list[LedgerRow]:
    """The edition's latest deliveries that failed, bounced or whose fate is unknown, newest
    first: what the send page shows while the send runs."""
    rows = session.execute(
        _ledger_rows()
        .where(Delivery.edition_id == edition_id, Delivery.status.in_((FAILED, BOUNCED, UNKNOWN)))
        .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return [LedgerRow(*r) for r in rows]
