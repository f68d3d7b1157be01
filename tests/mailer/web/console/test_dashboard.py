"""The dashboard: subscribers over time (both databases), by topic, partner and
organisation type as SVG charts with their tables, the last editions with unsubscribed
since, items waiting, feed errors and the relay's state."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from mailer.content.models import Partner
from mailer.delivery import overview
from mailer.delivery.models import Delivery
from mailer.digest.models import Edition
from subscribers.models import Subscriber
from tests.conftest import BOTH_DIALECTS
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures shared with the console tests)


def at(y, m, d=15):
    return datetime(y, m, d, 12, tzinfo=timezone.utc)


@BOTH_DIALECTS
def test_subscribers_over_time_counts_confirmations_and_departures_by_month(rt, session):
    session.add_all(
        [
            Subscriber(email="old@example.org", status="confirmed", confirmed_at=at(2025, 1)),
            Subscriber(email="a@example.org", status="confirmed", confirmed_at=at(2026, 10)),
            Subscriber(email="b@example.org", status="confirmed", confirmed_at=at(2026, 10, 31)),
            Subscriber(
                email="c@example.org", status="unsubscribed", confirmed_at=at(2026, 9), unsubscribed_at=at(2026, 11)
            ),
            Subscriber(email="p@example.org", status="pending"),
        ]
    )
    session.commit()
    rows = overview.subscribers_over_time(session, date(2026, 12, 1), months=4)
    assert [(r.month, r.confirmed, r.joined, r.left) for r in rows] == [
        ("2026-09", 2, 1, 0),
        ("2026-10", 4, 2, 0),
        ("2026-11", 3, 0, 1),
        ("2026-12", 3, 0, 0),
    ]
    assert overview.months_back(date(2026, 2, 1), 3) == ["2025-12", "2026-01", "2026-02"]


def test_the_dashboard_draws_each_chart_with_its_table_and_the_figures_that_matter(app, staff, clock, demo, session):  # noqa: F811
    subs = session.query(Subscriber).filter_by(status="confirmed").all()
    edition = Edition(period="2026-11", status="sent", subject="November digest", sent_at=at(2026, 11, 3))
    session.add(edition)
    session.flush()
    for i, s in enumerate(subs):
        session.add(Delivery(edition_id=edition.id, subscriber_id=s.id, status="failed" if i == 0 else "sent"))
    subs[1].status, subs[1].unsubscribed_at = "unsubscribed", at(2026, 11, 20)
    bhf = session.query(Partner).filter_by(slug="british-heart-foundation").one()
    bhf.feed_url, bhf.feed_error = "https://feeds.example.org/bhf.xml", "HTTP 500 <oops>"
    session.commit()
    c = app.test_client()
    log_in(c, staff["editor"], clock)
    html = c.get("/admin/").text
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg"') == 4 and html.count('role="img"') == 4
    for caption in (
        "Confirmed subscribers by month",
        "Confirmed subscribers by topic",
        "Confirmed subscribers by partner followed",
        "Confirmed subscribers by type of organisation",
    ):
        assert f"<caption>{caption}</caption>" in html
    row = re.search(r"<th scope=\"row\">2026-11</th>(.*?)</tr>", html.split("Last editions")[1], re.S).group(1)
    sent, failed = len(subs) - 1, 1
    assert re.findall(r'<td class="num">(\d+)</td>', row) == [str(sent), str(failed), "0", "0", "1"]
    assert "HTTP 500 &lt;oops&gt;" in html and "1 feed failing" in html
    assert "emails are written to the outbox" in html
    assert re.search(r"<strong>\d+</strong> items? waiting for moderation", html)


def test_chart_labels_are_text_never_markup(app, staff, clock, rt, session):  # noqa: F811
    from tests.factories import make_partner

    pid, _, _ = make_partner(rt)
    session.get(Partner, pid).name = '<script>alert(1)</script>"'
    session.commit()
    c = app.test_client()
    user = staff["viewer"]
    user.totp_secret = None
    session.commit()
    log_in(c, user, clock)
    html = c.get("/admin/").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"\sstyle=|<style", html)


def test_the_relay_check_is_kept_briefly_not_made_at_every_load(app, staff, clock, rt, transport):  # noqa: F811
    """A real relay on loopback, stopped after the first look: within the cache's time the
    dashboard still says what it found then; after it, it looks again and sees it gone."""
    from dataclasses import replace

    from mailer.boot import boot
    from mailer.web.console import dashboard
    from tests.mailservers import Relay

    relay = Relay().start()
    boot(replace(rt.settings, smtp_url=relay.url), transport=transport)
    app.extensions.pop("console.relay_health", None)
    try:
        client = app.test_client()
        log_in(client, staff["admin"], clock)
        assert "Relay: answering" in client.get("/admin/").text
    finally:
        relay.stop()
    clock.t += dashboard.RELAY_CACHE_SECONDS - 2
    assert "Relay: answering" in client.get("/admin/").text  # no new connection yet
    clock.t += 3
    page = client.get("/admin/").text
    assert 'Relay: <strong class="error">not answering</strong>' in page
    app.extensions.pop("console.relay_health", None)
