"""The figures on the console's dashboard: subscribers over time and by topic, partner
followed and organisation type; the last editions with what happened to their deliveries
and how many readers unsubscribed since; feeds in error.

Each figure is one grouped query (a handful per page), so the dashboard stays quick with
100,000 subscribers. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.delivery.models import Delivery
from mailer.digest.models import Edition
from subscribers.models import (
    CONFIRMED,
    ORGANISATION_TYPES,
    Subscriber,
    subscriber_partners,
    subscriber_topics,
)

DELIVERY_COLUMNS = ("sent", "failed", "bounced", "unknown")


def _month(session: Session, column):
    # The format is written into the SQL (not bound): PostgreSQL must see the same
    # expression in SELECT and GROUP BY. Times are stored as UTC; months are UTC months.
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM'"))
    return func.strftime(literal_column("'%Y-%m'"), column)


def months_back(today: date, n: int) -> list[str]:
    """The ``n`` months up to and including ``today``'s, oldest first, as YYYY-MM."""
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        out.append(f"{y:04}-{m:02}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


@dataclass(frozen=True)
class MonthRow:
    month: str
    confirmed: int  # confirmed and not unsubscribed at the month's end
    joined: int  # confirmed during the month
    left: int  # unsubscribed during the month


def subscribers_over_time(session: Session, today: date, months: int = 12) -> list[MonthRow]:
    """Confirmed readers at each month's end, with those who joined and left that month
    (from the confirmation and unsubscription dates; two grouped queries)."""
    joined_in = _month(session, Subscriber.confirmed_at).label("month")
    joined = dict(
        session.execute(
            select(joined_in, func.count()).where(Subscriber.confirmed_at.is_not(None)).group_by(joined_in)
        ).all()
    )
    left_in = _month(session, Subscriber.unsubscribed_at).label("month")
    left = dict(
        session.execute(
            select(left_in, func.count())
            .where(Subscriber.unsubscribed_at.is_not(None), Subscriber.confirmed_at.is_not(None))
            .group_by(left_in)
        ).all()
    )
    shown = months_back(today, months)
    running = sum(n for m, n in joined.items() if m < shown[0]) - sum(n for m, n in left.items() if m < shown[0])
    rows = []
    for m in shown:
        running += joined.get(m, 0) - left.get(m, 0)
        rows.append(MonthRow(m, running, joined.get(m, 0), left.get(m, 0)))
    return rows


def by_topic(session: Session) -> list[tuple[str, int]]:
    """Confirmed readers choosing each topic, in topic order."""
    counts = dict(
        session.execute(
            select(subscriber_topics.c.topic_id, func.count())
            .join(Subscriber, Subscriber.id == subscriber_topics.c.subscriber_id)
            .where(Subscriber.status == CONFIRMED)
            .group_by(subscriber_topics.c.topic_id)
        ).all()
    )
    return [(t.name, counts.get(t.id, 0)) for t in session.scalars(select(Topic).order_by(Topic.position, Topic.id))]


def by_partner(session: Session) -> list[tuple[str, int]]:
    """Confirmed readers following each partner, most followed first."""
    counts = dict(
        session.execute(
            select(subscriber_partners.c.partner_id, func.count())
            .join(Subscriber, Subscriber.id == subscriber_partners.c.subscriber_id)
            .where(Subscriber.status == CONFIRMED)
            .group_by(subscriber_partners.c.partner_id)
        ).all()
    )
    rows = [(p.name, counts.get(p.id, 0)) for p in session.scalars(select(Partner).order_by(Partner.name))]
    return sorted(rows, key=lambda r: -r[1])


def by_organisation_type(session: Session) -> list[tuple[str, int]]:
    """Confirmed readers by the type of organisation they gave ("Not given" for none)."""
    counts = dict(
        session.execute(
            select(Subscriber.organisation_type, func.count())
            .where(Subscriber.status == CONFIRMED)
            .group_by(Subscriber.organisation_type)
        ).all()
    )
    rows = [(label, counts.pop(code, 0)) for code, label in ORGANISATION_TYPES]
    rows.append(("Not given", sum(counts.values())))
    return rows


@dataclass(frozen=True)
class EditionRow:
    period: str
    status: str
    subject: str
    sent_at: object
    deliveries: dict[str, int]
    unsubscribed_since: int  # readers it reached who unsubscribed after it went out


def last_editions(session: Session, n: int = 6) -> list[EditionRow]:
    editions = list(session.scalars(select(Edition).order_by(Edition.period.desc()).limit(n)))
    ids = [e.id for e in editions]
    per: dict[int, dict[str, int]] = {i: {} for i in ids}
    gone: dict[int, int] = {}
    sent = [e.sent_at for e in editions if e.sent_at is not None]
    if ids:
        for edition_id, status, count in session.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(ids))
            .group_by(Delivery.edition_id, Delivery.status)
        ):
            per[edition_id][status] = count
        gone = dict(
            session.execute(
                select(Delivery.edition_id, func.count())
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .join(Edition, Edition.id == Delivery.edition_id)
                .where(
                    Delivery.edition_id.in_(ids),
                    Delivery.status == "sent",
                    Edition.sent_at.is_not(None),
                    Subscriber.unsubscribed_at > Edition.sent_at,
                    # the same, as a constant the planner can take to the index on
                    # unsubscribed_at: only the few who left are joined to their deliveries
                    Subscriber.unsubscribed_at > min(sent, default=Edition.sent_at),
                )
                .group_by(Delivery.edition_id)
            ).all()
        )
    return [EditionRow(e.period, e.status, e.subject, e.sent_at, per[e.id], gone.get(e.id, 0)) for e in editions]


def feed_errors(session: Session) -> list[Partner]:
    """Active partners whose last feed poll failed."""
    return list(
        session.scalars(
            select(Partner)
            .where(Partner.active, Partner.feed_url.is_not(None), Partner.feed_error.is_not(None))
            .order_by(Partner.name)
        )
    )
