"""Bounces and complaints in the console: who may see them, recent reports, failure rates
per receiving domain (both databases), the suppression list as hashes, and the lookup."""

from __future__ import annotations

import pytest

from mailer.delivery import reports
from mailer.delivery.models import Delivery
from mailer.delivery.suppression import COMPLAINT, HARD, SOFT, log_bounce, suppress
from mailer.digest.models import Edition
from mailer.staff.permissions import ROLE_PERMISSIONS, ROLES, SUBSCRIBERS_MANAGE
from subscribers import suppression
from subscribers.models import Subscriber
from tests.conftest import BOTH_DIALECTS, csrf_token
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures shared with the console tests)


def world(session):
    """Two editions to 6 readers at three domains; nhs.example bounces, one complaint."""
    e1 = Edition(period="2026-10", status="sent", subject="October")
    e2 = Edition(period="2026-11", status="sent", subject="November")
    session.add_all([e1, e2])
    readers = [
        Subscriber(email=email, status="confirmed")
        for email in (
            "a@nhs.example",
            "b@NHS.example",
            "c@nhs.example",
            "d@gp.example",
            "e@gp.example",
            "f@charity.example",
        )
    ]
    session.add_all(readers)
    session.flush()
    for e in (e1, e2):
        for r in readers:
            status = "sent"
            if e is e2 and r.email.lower().endswith("nhs.example") and r.email[0] in "ab":
                status = "bounced"
            if e is e2 and r.email == "d@gp.example":
                status = "failed"
            session.add(Delivery(edition_id=e.id, subscriber_id=r.id, status=status))
    session.flush()
    d = session.query(Delivery).filter_by(edition_id=e2.id, subscriber_id=readers[0].id).one()
    log_bounce(session, d.id, "a@nhs.example", HARD, "5.1.1 a@nhs.example: no such user")
    suppress(session, "a@nhs.example", HARD, "bounce report")
    log_bounce(session, None, "c@nhs.example", SOFT, "4.2.2 mailbox full")
    log_bounce(session, None, "f@charity.example", COMPLAINT, "feedback-type abuse")
    suppress(session, "f@charity.example", COMPLAINT, "bounce report")
    suppression.suppress(session, "gone@example.org", "unsubscribed", "manage page")
    session.commit()


@BOTH_DIALECTS
def test_failure_rates_per_domain_count_the_latest_editions(rt, session):
    world(session)
    rates = {d.domain: d for d in reports.domain_failure_rates(session)}
    assert list(rates) == ["nhs.example", "gp.example", "charity.example"]  # most failures first
    nhs, gp = rates["nhs.example"], rates["gp.example"]
    assert (nhs.total, nhs.failed, nhs.bounced) == (6, 0, 2) and round(nhs.rate, 3) == 0.333
    assert (gp.total, gp.failed, gp.bounced) == (4, 1, 0)
    only_latest = {d.domain: d.total for d in reports.domain_failure_rates(session, editions=1)}
    assert only_latest == {"nhs.example": 3, "gp.example": 2, "charity.example": 1}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_bounces_exactly_as_its_permissions_say(app, staff, clock, role):  # noqa: F811
    user = staff[role]
    if role in ("moderator", "viewer"):
        user.totp_secret = None
    c = app.test_client()
    log_in(c, user, clock)
    allowed = SUBSCRIBERS_MANAGE in ROLE_PERMISSIONS[role]
    assert c.get("/admin/bounces").status_code == (200 if allowed else 403)
    token = csrf_token(c.get("/admin/").text)
    r = c.post("/admin/bounces", data={"csrf_token": token, "address": "a@nhs.example"})
    assert r.status_code == (200 if allowed else 403)
    assert ('href="/admin/bounces"' in c.get("/admin/").text) == allowed


def test_logged_out_the_bounces_page_and_lookup_go_to_login(client):
    assert client.get("/admin/bounces").headers["Location"].startswith("/admin/login")
    token = csrf_token(client.get("/admin/login").text)
    r = client.post("/admin/bounces", data={"csrf_token": token, "address": "a@nhs.example"})
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login")


def test_the_page_shows_reports_rates_and_the_list_as_hashes_never_addresses(app, staff, clock, session):  # noqa: F811
    world(session)
    c = app.test_client()
    log_in(c, staff["editor"], clock)
    html = c.get("/admin/bounces").text
    assert "hard: 1; soft: 1; complaint: 1." in html
    assert (
        '<th scope="row">nhs.example</th><td class="num">6</td><td class="num">0</td><td class="num">2</td><td class="num">33.3%</td>'
        in html
    )
    assert "5.1.1 &lt;recipient&gt;: no such user" in html and "2026-11" in html
    assert "unsubscribed: 1; hard bounce: 1; complaint: 1; erased: 0." in html
    page = html.split("The suppression list", 1)[1]
    assert "@" not in page.split("</table>")[0].split("<tbody>")[1]  # hashes only
    assert "a@nhs.example" not in html and "charity.example</th>" in html
    complaints = c.get("/admin/bounces?kind=complaint").text
    assert "feedback-type abuse" in complaints and "mailbox full" not in complaints


def test_the_lookup_says_whether_an_address_is_suppressed_and_why(app, staff, clock, session):  # noqa: F811
    world(session)
    c = app.test_client()
    log_in(c, staff["editor"], clock)
    token = csrf_token(c.get("/admin/bounces").text)
    r = c.post("/admin/bounces", data={"csrf_token": token, "address": "A@nhs.example"})
    assert "<strong>A@nhs.example is suppressed</strong>: hard bounce (bounce report)" in r.text
    assert "hard, 5.1.1 &lt;recipient&gt;: no such user" in r.text
    r = c.post("/admin/bounces", data={"csrf_token": token, "address": "c@nhs.example"})
    assert "c@nhs.example is not suppressed" in r.text and "soft, 4.2.2 mailbox full" in r.text
    r = c.post("/admin/bounces", data={"csrf_token": token, "address": "nobody@example.org"})
    assert "is not suppressed" in r.text and "No bounce or complaint reports" in r.text
    r = c.post("/admin/bounces", data={"csrf_token": token, "address": ""})
    assert r.status_code == 400 and "Type the address to look up." in r.text
    r = c.post("/admin/bounces", data={"csrf_token": token, "address": "<script>x</script>@e.org"})
    assert "<script>x" not in r.text
