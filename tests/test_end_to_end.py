"""The whole thin path in one test: subscribe, confirm, submit, approve, build, send,
then unsubscribe with the one-click header and see the next send skip the person."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy

from sqlalchemy import select

from mailer.content.models import Item, Partner, Topic
from mailer.content.partners import rotate_submit_secret
from mailer.delivery.models import Delivery
from mailer.digest.models import Edition
from subscribers.models import Subscriber
from tests.conftest import BOTH_DIALECTS, csrf_token, links_in

pytestmark = BOTH_DIALECTS  # the dialect matters here: see tests/conftest.py


def _parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def test_partner_item_reaches_subscriber_inbox_and_one_click_unsubscribe_stops_it(
    client, session, transport, queue, demo, rt
):
    from mailer.cli import main

    topics = {t.slug: t.id for t in session.scalars(select(Topic))}
    naz = session.scalar(select(Partner).where(Partner.slug == "naz-project-london"))

    # 1. Subscribe: the form, then the confirmation email through queue and transport.
    page = client.get("/subscribe")
    resp = client.post(
        "/subscribe",
        data={
            "csrf_token": csrf_token(page.text),
            "email": "Nurse.Lead@Example.ORG",
            "name": "Priya Patel",
            "organisation": "Riverside Surgery",
            "topics": [str(topics["sexual-health"])],
        },
    )
    assert resp.status_code == 302
    queue()
    assert [m.recipient for m in transport.messages] == ["Nurse.Lead@example.org"]
    confirm_url = next(u for u in links_in(transport.messages[0].data) if "/confirm/" in u)
    sub = session.scalar(select(Subscriber).where(Subscriber.email == "Nurse.Lead@example.org"))
    assert sub.status == "pending"
    path = confirm_url.removeprefix(rt.settings.base_url)
    page = client.get(path)
    assert b"Confirm my subscription" in page.data
    assert client.post(path, data={"csrf_token": csrf_token(page.text)}).status_code == 200
    session.refresh(sub)
    assert sub.status == "confirmed"

    # 2. Submit: a partner's secret link; the item waits as submitted.
    with rt.db.transaction() as s:
        secret = rotate_submit_secret(s.get(Partner, naz.id))
        s.get(Partner, naz.id).contact_email = "comms@naz.example.org"  # registered by the team
    page = client.get(f"/submit/{secret}")
    resp = client.post(
        f"/submit/{secret}",
        data={
            "csrf_token": csrf_token(page.text),
            "kind": "event",
            "title": "PrEP clinic evenings for Black African communities",
            "summary": "New evening sessions with community advocates.",
            "link": "https://www.naz.org.uk/prep",
            "topics": [str(topics["sexual-health"])],
            "event_date": date.today().isoformat(),
            "event_time": "18:30",
            "event_place": "Online",
            "contact_email": "amara@naz.example.org",  # the person sending it in
        },
    )
    assert resp.status_code == 200
    item = session.scalar(select(Item).where(Item.title.like("PrEP%")))
    assert item.status == "submitted"
    # The receipt goes through the queue: waited for here, so that it is out before the
    # decision (two queue threads may otherwise send the two notices in either order).
    queue()

    # ... approved from the CLI.
    runner = rt and client.application.test_cli_runner()
    assert runner.invoke(main, ["items", "approve", str(item.id)]).exit_code == 0
    queue()
    # ... and the partner's registered contact heard twice: a receipt, then the decision.
    assert [
        _parse(m.data)["Subject"].split(":")[0] for m in transport.messages if m.recipient == "comms@naz.example.org"
    ] == ["Received", "Approved for the digest"]

    # 3-5. Build and send this month's edition, waiting for the workers.
    period = date.today().strftime("%Y-%m")
    transport.messages.clear()
    result = runner.invoke(main, ["edition", "build", "--period", period])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["edition", "send", period, "--wait"])
    assert result.exit_code == 0, result.output
    session.expire_all()
    edition = session.scalar(select(Edition).where(Edition.period == period))
    assert edition.status == "sent"
    deliveries = session.scalars(select(Delivery).where(Delivery.edition_id == edition.id)).all()
    assert {d.status for d in deliveries} == {"sent"}
    assert len(deliveries) == 4 == len(transport.messages)  # three demo subscribers and Priya

    mine = [m for m in transport.messages if m.recipient == "Nurse.Lead@example.org"]
    assert len(mine) == 1
    msg = _parse(mine[0].data)
    text = msg.get_body(("plain",)).get_content()
    assert "PrEP clinic evenings" in text  # her topic
    assert "What works in sexual health services".lower() in text.lower()
    assert "heart screening" not in text  # not her topic, not her partner
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = msg["List-Unsubscribe"].split(",")[0].strip("<> ")
    assert unsubscribe_url.startswith("https://digest.example.org/u/")
    assert "mailto:" in msg["List-Unsubscribe"]
    html = msg.get_body(("html",)).get_content()
    assert unsubscribe_url in html and "/manage/" in html

    # Sending again sends nothing new.
    result = runner.invoke(main, ["edition", "send", period, "--wait"])
    assert result.exit_code == 0
    assert len(transport.messages) == 4

    # 6. One-click unsubscribe (RFC 8058): no cookie, no CSRF token, 200, no redirect.
    fresh = client.application.test_client()
    resp = fresh.post(unsubscribe_url.removeprefix(rt.settings.base_url), data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200
    session.refresh(sub)
    assert sub.status == "unsubscribed"

    # Next month she gets nothing.
    with rt.db.transaction() as s:
        s.add(
            Item(
                partner_id=naz.id,
                kind="news",
                title="Next month's news",
                summary="More.",
                link="https://www.naz.org.uk/next",
                status="approved",
                dated=date(2099, 1, 5),
                topics=[s.get(Topic, topics["sexual-health"])],
            )
        )
    transport.messages.clear()
    assert runner.invoke(main, ["edition", "build", "--period", "2099-01"]).exit_code == 0
    assert runner.invoke(main, ["edition", "send", "2099-01", "--wait"]).exit_code == 0
    assert "Nurse.Lead@example.org" not in [m.recipient for m in transport.messages]
    assert [m.recipient for m in transport.messages] == ["equality.lead@heart-of-manchester.example.org"]
