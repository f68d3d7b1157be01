"""The dashboard every role sees: subscribers by status and over time, by topic, partner
followed and organisation type (each chart with its table beside it), the last editions
with what happened to their deliveries, items waiting, feed errors and the relay's health.

The figures come from :mod:`mailer.delivery.overview` (grouped queries); the charts are
SVG drawn here (:mod:`mailer.web.console.charts`).
"""

from __future__ import annotations

from datetime import date

from flask import current_app, g, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.delivery import overview
from mailer.health import check_relay
from mailer.runtime import current as rt
from mailer.staff import inbox
from mailer.staff.permissions import DASHBOARD
from mailer.web.console import charts
from mailer.web.console.access import db, now, require
from mailer.web.console.blueprint import bp
from subscribers.models import Subscriber

LAST_EDITIONS = 6
MONTHS = 12


def counts(session: Session, today: date) -> dict:
    """Every figure on the dashboard."""
    by_status = dict(session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
    months = overview.subscribers_over_time(session, today, MONTHS)
    return {
        "subscribers": by_status,
        "subscribers_total": sum(by_status.values()),
        "months": months,
        "topics": overview.by_topic(session),
        "partners": overview.by_partner(session),
        "org_types": overview.by_organisation_type(session),
        "items_waiting": inbox.waiting(session),
        "editions": overview.last_editions(session, LAST_EDITIONS),
        "feed_errors": overview.feed_errors(session),
    }


RELAY_CACHE_SECONDS = 30


def relay_health() -> tuple[str, str]:
    """``(state, words)``: the relay answers EHLO (at most 2 s), or the embedded outbox.

    The answer is kept for :data:`RELAY_CACHE_SECONDS` per process (timed by the console's
    clock), so a dashboard left open or many people opening it do not each wait on, or
    knock at, the relay."""
    settings = rt().settings
    if not settings.smtp_url:
        return "outbox", "No relay configured: emails are written to the outbox (embedded mode)."
    t = now()
    cached = current_app.extensions.get("console.relay_health")
    if cached and cached[1] == settings.smtp_url and 0 <= t - cached[0] < RELAY_CACHE_SECONDS:
        return cached[2]
    check = check_relay(settings.smtp_url)
    answer = ("ok" if not check.failed else "error"), check.detail
    current_app.extensions["console.relay_health"] = (t, settings.smtp_url, answer)
    return answer


@bp.get("/")
@require(DASHBOARD)
def dashboard():
    c = counts(db(), date.today())
    month_names = [m.month for m in c["months"]]
    pictures = {
        "growth": charts.lines(
            "growth",
            "Confirmed subscribers at each month's end, and those who left each month",
            month_names,
            [("Confirmed", [m.confirmed for m in c["months"]]), ("Left", [m.left for m in c["months"]])],
        ),
        "topics": charts.bars("topics", "Confirmed subscribers by topic chosen", c["topics"]),
        "partners": charts.bars("partners", "Confirmed subscribers by partner followed", c["partners"]),
        "org_types": charts.bars("orgtypes", "Confirmed subscribers by type of organisation", c["org_types"]),
    }
    relay = relay_health()
    return render_template(
        "console/dashboard.html",
        c=c,
        charts=pictures,
        relay=relay,
        user=g.staff,
        columns=overview.DELIVERY_COLUMNS,
    )
