"""What the bounces and complaints screen shows: recent reports, failure rates per
receiving domain, and the suppression list (hashes only) with a lookup by address.

Read-only, and built from indexed, grouped queries. No address is stored with a bounce or
a suppression, so the list can only say *whether* an address is on it when someone types
the address (:func:`lookup`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from mailer.delivery.models import BOUNCED, FAILED, Delivery
from mailer.delivery.suppression import Bounce
from mailer.digest.models import Edition
from mailer.paging import Page, counted
from subscribers import suppression
from subscribers.models import Subscriber, Suppression


def _page(session: Session, q, page: int, per_page: int, order) -> Page:
    total, page = counted(session, q, page, per_page)
    rows = session.execute(q.order_by(*order).offset((page - 1) * per_page).limit(per_page)).all()
    return Page(rows, total, page, per_page)


def recent_bounces(session: Session, *, kind: str = "", page: int = 1, per_page: int = 50) -> Page:
    """Bounce and complaint reports, newest first: rows of ``(Bounce, edition period or None)``."""
    q = (
        select(Bounce, Edition.period)
        .outerjoin(Delivery, Delivery.id == Bounce.delivery_id)
        .outerjoin(Edition, Edition.id == Delivery.edition_id)
    )
    if kind:
        q = q.where(Bounce.kind == kind)
    return _page(session, q, page, per_page, (Bounce.received_at.desc(), Bounce.id.desc()))


def bounce_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Bounce.kind, func.count()).group_by(Bounce.kind)).all())


@dataclass(frozen=True)
class DomainRate:
    domain: str
    total: int
    failed: int
    bounced: int

    @property
    def rate(self) -> float:
        return (self.failed + self.bounced) / self.total if self.total else 0.0


def _domain_of(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return func.lower(func.split_part(column, "@", 2))
    return func.lower(func.substr(column, func.instr(column, "@") + 1))


def domain_failure_rates(session: Session, *, editions: int = 3, limit: int = 25) -> list[DomainRate]:
    """Per receiving domain, over the latest ``editions`` editions: deliveries, failed and
    bounced, the domains with most failures first (then the biggest)."""
    latest = select(Edition.id).order_by(Edition.period.desc()).limit(editions).scalar_subquery()
    domain = _domain_of(session, Subscriber.email).label("domain")
    failed = func.sum(case((Delivery.status == FAILED, 1), else_=0))
    bounced = func.sum(case((Delivery.status == BOUNCED, 1), else_=0))
    rows = session.execute(
        select(domain, func.count(), failed, bounced)
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.edition_id.in_(latest), Subscriber.email.like("%@%"))
        .group_by(domain)
        .order_by((failed + bounced).desc(), func.count().desc(), domain)
        .limit(limit)
    ).all()
    return [DomainRate(d, int(t), int(f or 0), int(b or 0)) for d, t, f, b in rows]


def suppression_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason)).all())


def suppressions(session: Session, *, reason: str = "", page: int = 1, per_page: int = 50) -> Page:
    """The list, newest first: rows of ``(Suppression,)``; each shows as its hash."""
    q = select(Suppression)
    if reason:
        q = q.where(Suppression.reason == reason)
    return _page(session, q, page, per_page, (Suppression.created_at.desc(), Suppression.id.desc()))


@dataclass(frozen=True)
class Lookup:
    address: str
    entry: Suppression | None  # why and since when it is suppressed; None: it is not
    bounces: list[Bounce]  # its bounce and complaint reports, newest first


def lookup(session: Session, address: str) -> Lookup:
    """Whether ``address`` is suppressed and why, with its bounce history. (Finding the
    entry may move it to the newest key; the caller decides whether to keep that.)"""
    entry = suppression.suppression_for(session, address)
    reports = list(
        session.scalars(
            select(Bounce)
            .where(Bounce.email_hash.in_(suppression.hashes_of(session, address)))
            .order_by(Bounce.received_at.desc(), Bounce.id.desc())
            .limit(50)
        )
    )
    return Lookup(address, entry, reports)
