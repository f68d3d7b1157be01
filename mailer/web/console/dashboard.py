"""The dashboard every role sees: subscribers by status, items waiting, the last editions."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.content.models import SUBMITTED, Item
from mailer.delivery.models import Delivery
from mailer.digest.models import Edition
from mailer.staff.permissions import DASHBOARD
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from subscribers.models import Subscriber

LAST_EDITIONS = 6


@dataclass(frozen=True)
class EditionRow:
    period: str
    status: str
    subject: str
    sent_at: object
    deliveries: dict[str, int]


def counts(session: Session) -> dict:
    """The figures on the dashboard, each from one indexed, grouped query."""
    by_status = dict(session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
    waiting = session.scalar(select(func.count()).select_from(Item).where(Item.status == SUBMITTED))
    editions = session.scalars(select(Edition).order_by(Edition.period.desc()).limit(LAST_EDITIONS)).all()
    per_edition: dict[int, dict[str, int]] = {e.id: {} for e in editions}
    if editions:
        rows = session.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_(per_edition))
            .group_by(Delivery.edition_id, Delivery.status)
        )
        for edition_id, status, n in rows:
            per_edition[edition_id][status] = n
    return {
        "subscribers": by_status,
        "subscribers_total": sum(by_status.values()),
        "items_waiting": waiting,
        "editions": [EditionRow(e.period, e.status, e.subject, e.sent_at, per_edition[e.id]) for e in editions],
    }


@bp.get("/")
@require(DASHBOARD)
def dashboard():
    return render_template("console/dashboard.html", c=counts(db()), user=g.staff)
