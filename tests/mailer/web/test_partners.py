"""The partner submission form: fields, refusals with hostile input, preview, receipt."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from mailer.app import create_app
from mailer.content.models import Item, Partner, Topic
from mailer.content.partners import revoke_submit_secret, rotate_submit_secret
from mailer.counters import MemoryCounters
from tests.conftest import csrf_token
from tests.factories import make_partner, topic_ids

SOON = date.today() + timedelta(days=7)
LATER = date.today() + timedelta(days=20)


def _form(client, secret, **fields):
    page = client.get(f"/submit/{secret}")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_token(page.text),
        "kind": "news",
        "title": "PrEP evenings",
        "summary": "Evening sessions with community advocates.",
        "link": "https://www.naz.org.uk/prep",
        "contact_email": "comms@naz.example.org",
    }
    data.update(fields)
    return data


def _count(session):
    session.expire_all()
    return session.scalar(select(func.count(Item.id)))


def test_event_with_everything_is_stored_sanitised_and_receipt_is_emailed(client, rt, session, transport, queue):
    _, secret, _ = make_partner(rt)
    t = topic_ids(session)
    body = (
        "## Who it is for\n\nBlack African **communities**. <script>alert(1)</script>"
        "<img src=x onerror=alert(1)> [book](https://www.naz.org.uk/book) "
        '[evil](javascript:alert(1)) <a href="JaVaScRiPt:alert(2)">x</a>'
        '<p style="background:url(javascript:alert(3));width:expression(alert(4))">styled</p>'
        '<iframe src="https://evil.example"></iframe><a href="data:text/html,<script>">d</a>'
    )
    resp = client.post(
        f"/submit/{secret}",
        data=_form(
            client,
            secret,
            kind="event",
            body=body,
            topics=[str(t["sexual-health"]), str(t["heart-health"])],
            event_date=SOON.isoformat(),
            event_time="18:30",
            event_place="Naz centre, Hammersmith",
            image_url="https://www.naz.org.uk/prep.jpg",
            image_alt="Advocates at a community stall",
            publish_from=date.today().isoformat(),
            publish_until=SOON.isoformat(),
        ),
    )
    assert resp.status_code == 200, resp.text
    assert "is with the editors" in resp.text
    item = session.scalar(select(Item))
    assert (item.status, item.kind, item.source) == ("submitted", "event", "form")
    assert item.event_starts_at.isoformat() == f"{SOON.isoformat()}T18:30:00"
    assert item.event_place == "Naz centre, Hammersmith"
    assert item.image_alt == "Advocates at a community stall"
    assert item.publish_until == SOON
    assert sorted(x.slug for x in item.topics) == ["heart-health", "sexual-health"]
    assert item.body_markdown.startswith("## Who it is for")  # the original is kept
    html = item.body_html.lower()
    for bad in ("<script", "onerror", 'href="javascript', "expression(", "style=", "<iframe", 'href="data', "<img"):
        assert bad not in html, bad
    assert "[evil](javascript:alert(1))" in html  # left as inert text, not a link
    assert "<h3>who it is for</h3>" in html and 'href="https://www.naz.org.uk/book"' in html
    assert [e.action for e in item.events] == ["submitted"]
    queue()  # to the partner's registered contact; the typed address is for the editors
    assert [m.recipient for m in transport.messages] == ["office@partner.example.org"]
    assert item.contact_email == "comms@naz.example.org"
    msg = message_from_bytes(transport.messages[0].data, policy=policy.default)
    assert msg["Subject"] == "Received: PrEP evenings"
    assert f"reference {item.id}" in msg.get_body(("plain",)).get_content()


def test_bad_fields_are_named_and_nothing_is_stored(client, rt, session, transport, queue):
    _, secret, _ = make_partner(rt)
    t = str(topic_ids(session)["sexual-health"])
    cases = [
        ({"link": "javascript:alert(1)"}, "full web address"),
        ({"link": "https://nhs.uk@evil.example/"}, "user name or password"),
        ({"title": "Safe\u202egnp.exe"}, "control characters"),
        ({"summary": "x" * 601}, "at most 600"),
        ({"body": "y" * 20_001}, "at most 20000"),
        ({"image_url": "https://example.org/a.png"}, "describe the image"),
        ({"image_url": "data:image/png;base64,AAAA", "image_alt": "a"}, "full web address"),
        ({"kind": "event"}, "required for an event"),
        ({"kind": "event", "event_date": SOON.isoformat()}, "is required"),
        ({"kind": "event", "event_date": "2020-01-01", "event_place": "Online"}, "has already passed"),
        (
            {"kind": "event", "event_date": SOON.isoformat(), "event_place": "Online", "event_time": "25:99"},
            "Not a valid time",
        ),
        ({"publish_until": "2020-01-01"}, "already in the past"),
        ({"publish_from": LATER.isoformat(), "publish_until": SOON.isoformat()}, "on or after"),
        ({"contact_email": "not-an-address"}, "not a valid email"),
        ({"contact_email": ""}, "so the editor can reply"),
        ({"kind": "bogus"}, "Not a valid choice"),
    ]
    for fields, expected in cases:
        data = _form(client, secret, topics=[t], **fields)
        resp = client.post(f"/submit/{secret}", data=data)
        assert resp.status_code == 400, fields
        assert expected in resp.text, (fields, resp.text[-2000:])
    resp = client.post(f"/submit/{secret}", data=_form(client, secret))  # no topic
    assert resp.status_code == 400 and "Choose at least one topic" in resp.text
    assert _count(session) == 0
    queue()
    assert transport.messages == []


def test_revoked_and_rotated_links_are_refused(client, rt, session):
    pid, secret, _ = make_partner(rt)
    assert client.get(f"/submit/{secret}").status_code == 200
    with rt.db.transaction() as s:
        new = rotate_submit_secret(s.get(Partner, pid))
    assert client.get(f"/submit/{secret}").status_code == 404
    assert client.get(f"/submit/{new}").status_code == 200
    with rt.db.transaction() as s:
        revoke_submit_secret(s.get(Partner, pid))
    resp = client.get(f"/submit/{new}")
    assert resp.status_code == 404 and "not valid or has been replaced" in resp.text
    assert client.get("/submit/" + "a" * 500).status_code == 404


def test_preview_shows_the_item_escaped_or_the_first_problem(client, rt, session):
    _, secret, _ = make_partner(rt)
    t = str(topic_ids(session)["sexual-health"])
    data = _form(
        client,
        secret,
        topics=[t],
        title="<b>Bold</b> & <script>x</script>",
        body="**hello** <img src=x onerror=alert(1)>",
    )
    resp = client.post(f"/submit/{secret}/preview", data=data)
    assert resp.status_code == 200
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; &lt;script&gt;" in resp.text
    assert "<strong>hello</strong>" in resp.text and "onerror" not in resp.text
    assert "Sexual health" in resp.text and "News · Naz Project London" in resp.text
    resp = client.post(f"/submit/{secret}/preview", data={**data, "link": "ftp://x"})
    assert 'id="preview-error"' in resp.text and "full web address" in resp.text
    # the no-script path: the Preview button re-renders the page with the preview, stores nothing
    resp = client.post(f"/submit/{secret}", data={**data, "preview": "1"})
    assert resp.status_code == 200 and "<strong>hello</strong>" in resp.text
    assert _count(session) == 0
    assert client.post(f"/submit/{secret}/preview", data={"title": "x"}).status_code == 400  # no CSRF


def test_trusted_partner_item_is_approved_at_once(client, rt, session, transport, queue):
    _, secret, _ = make_partner(rt, trusted=True)
    t = str(topic_ids(session)["sexual-health"])
    resp = client.post(f"/submit/{secret}", data=_form(client, secret, topics=[t]))
    assert resp.status_code == 200 and "is approved" in resp.text
    item = session.scalar(select(Item))
    assert item.status == "approved" and item.decided_by == "trusted partner"
    queue()
    assert [message_from_bytes(m.data, policy=policy.default)["Subject"] for m in transport.messages] == [
        "Approved for the digest: PrEP evenings"
    ]


def test_embargoed_item_is_dated_in_its_first_allowed_month(client, rt, session):
    _, secret, _ = make_partner(rt)
    t = str(topic_ids(session)["sexual-health"])
    later = date.today() + timedelta(days=70)
    assert (
        client.post(
            f"/submit/{secret}", data=_form(client, secret, topics=[t], publish_from=later.isoformat())
        ).status_code
        == 200
    )
    assert session.scalar(select(Item)).dated == later


def test_the_same_form_sent_twice_makes_one_item_and_one_receipt(client, rt, session, transport, queue):
    _, secret, _ = make_partner(rt)
    data = _form(client, secret, topics=[str(topic_ids(session)["sexual-health"])])
    assert client.post(f"/submit/{secret}", data=data).status_code == 200
    again = client.post(f"/submit/{secret}", data=data)
    assert again.status_code == 200 and "already had this item" in again.text
    assert _count(session) == 1
    queue()
    assert len(transport.messages) == 1


def test_invisible_and_direction_characters_are_stripped_from_body_and_summary(client, rt, session):
    _, secret, _ = make_partner(rt)
    data = _form(
        client,
        secret,
        topics=[str(topic_ids(session)["sexual-health"])],
        summary="Pay\u200b here\u202e: evil",
        body="Visit [nhs\u200d.uk](https://evil.example)\u2066x\u2069",
        event_place="x",
    )
    assert client.post(f"/submit/{secret}", data=data).status_code == 200
    item = session.scalar(select(Item))
    assert item.summary == "Pay here: evil"
    for ch in "\u200b\u200d\u202e\u2066\u2069":
        assert ch not in item.body_html and ch not in item.summary


@pytest.fixture
def limited(rt, settings, transport):
    """``make(**limits)``: a client of an app with these settings changed and a limiter on a
    hand-moved clock; returns (client, clock) where ``clock[0]`` is the time in seconds."""

    def make(**limits):
        app = create_app(dataclasses.replace(settings, **limits), transport)
        app.config["TESTING"] = True
        clock = [0.0]
        app.extensions["subscribers.limiter"] = MemoryCounters(clock=lambda: clock[0])
        return app.test_client(), clock

    return make


def test_receipts_go_only_to_the_registered_contact_with_a_safe_subject(client, rt, session, transport, queue):
    _, secret, _ = make_partner(rt)
    t = str(topic_ids(session)["sexual-health"])
    title = (
        "URGENT your account is suspended - verify at https://evil.example/login today or lose "
        "access forever, reply with your password"
    )
    resp = client.post(
        f"/submit/{secret}",
        data=_form(client, secret, topics=[t], title=title, contact_email="stranger@victim.example"),
    )
    assert resp.status_code == 200
    assert "registered contact address" in resp.text and "stranger@victim.example" not in resp.text
    queue()
    assert [m.recipient for m in transport.messages] == ["office@partner.example.org"]
    subject = message_from_bytes(transport.messages[0].data, policy=policy.default)["Subject"]
    assert subject == "Received: URGENT your account is suspended - verify at…"
    assert "evil.example" not in subject and len(subject) <= len("Received: ") + 60
    # The typed address stays on the item for the editors to reply to by hand.
    assert session.scalar(select(Item)).contact_email == "stranger@victim.example"

    # A partner the team has no contact for: the item is kept, nobody is emailed.
    _, other, _ = make_partner(rt, "afiya-trust", contact=None)
    resp = client.post(
        f"/submit/{other}",
        data=_form(client, other, topics=[t], title="Second", contact_email="stranger@victim.example"),
    )
    assert resp.status_code == 200 and "no contact address for Afiya Trust" in resp.text
    queue()
    assert _count(session) == 2 and len(transport.messages) == 1


def test_submissions_per_partner_are_limited_with_retry_after_and_nothing_stored(
    limited, rt, session, transport, queue
):
    client, clock = limited(partner_submissions_per_hour=3)
    _, secret, token = make_partner(rt)
    _, other, _ = make_partner(rt, "afiya-trust")
    t = str(topic_ids(session)["sexual-health"])
    for n in range(3):
        assert (
            client.post(f"/submit/{secret}", data=_form(client, secret, topics=[t], title=f"Item {n}")).status_code
            == 200
        )
    # A form with a mistake costs no allowance: it stores nothing anyway.
    assert client.post(f"/submit/{secret}", data=_form(client, secret, topics=[t], link="ftp://x")).status_code == 400
    clock[0] = 1200
    resp = client.post(f"/submit/{secret}", data=_form(client, secret, topics=[t], title="One too many"))
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "2400"
    assert "has sent 3 items this hour" in resp.text and "again in about 40 minutes" in resp.text
    assert 'value="One too many"' in resp.text  # what they typed is still on the page
    # The API counts against the same allowance.
    api = client.post(
        "/api/v1/items",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "kind": "news",
            "title": "By API",
            "summary": "s",
            "link": "https://example.org/a",
            "topics": ["sexual-health"],
            "contact_email": "comms@naz.example.org",
        },
    )
    assert api.status_code == 429 and api.headers["Retry-After"] == "2400"
    assert api.json["error"]["code"] == "rate_limited"
    assert _count(session) == 3
    # Another partner has its own allowance; the first has a new one once the hour is over.
    assert client.post(f"/submit/{other}", data=_form(client, other, topics=[t])).status_code == 200
    clock[0] = 3600
    assert (
        client.post(f"/submit/{secret}", data=_form(client, secret, topics=[t], title="Next hour")).status_code == 200
    )
    queue()
    assert _count(session) == 5 and len(transport.messages) == 5


def test_receipts_per_contact_address_are_limited(limited, rt, session, transport, queue):
    client, clock = limited(partner_receipts_per_hour=2)
    _, secret, _ = make_partner(rt)
    t = str(topic_ids(session)["sexual-health"])
    pages = [
        client.post(f"/submit/{secret}", data=_form(client, secret, topics=[t], title=f"Item {n}")) for n in range(3)
    ]
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert "has had many emails from us this hour" in pages[2].text
    queue()
    assert _count(session) == 3  # every item is kept; only the third receipt is not sent
    assert [m.recipient for m in transport.messages] == ["office@partner.example.org"] * 2


# --- The partner submission form behind each partner's secret link. (was tests/test_partner_submission.py)
@pytest.fixture
def link(rt, demo):
    with rt.db.transaction() as s:
        partner = s.scalar(select(Partner).where(Partner.slug == "afiya-trust"))
        return f"/submit/{rotate_submit_secret(partner)}"


def _submit(client, url, session, **fields):
    topic = session.scalar(select(Topic).where(Topic.slug == "policy"))
    page = client.get(url)
    data = {
        "csrf_token": csrf_token(page.text),
        "kind": "news",
        "title": "Consultation response",
        "summary": "Our response to the consultation.",
        "link": "https://www.afiya-trust.org/c",
        "topics": [str(topic.id)],
        "contact_email": "comms@afiya.example.org",
    }
    data.update(fields)
    return client.post(url, data=data)


def _items(session):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Item))


def test_partner_submits_an_item_that_waits_for_approval(client, session, link):
    page = client.get(link)
    assert "You are submitting as <strong>Afiya Trust</strong>" in page.text
    resp = _submit(client, link, session)
    assert resp.status_code == 200 and "is with the editors" in resp.text
    item = session.scalar(select(Item).where(Item.title == "Consultation response"))
    assert item.status == "submitted" and item.partner.slug == "afiya-trust"
    assert [t.slug for t in item.topics] == ["policy"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"link": "javascript:alert(1)"}, "must be a full web address"),
        ({"link": "data:text/html,hi"}, "must be a full web address"),
        ({"title": ""}, "is required"),
        ({"summary": "x" * 601}, "at most 600 characters"),
        ({"topics": []}, "Choose at least one topic."),
        ({"kind": "advert"}, "Not a valid choice"),
    ],
)
def test_bad_submissions_are_refused_and_store_nothing(client, session, link, fields, message):
    before = _items(session)
    resp = _submit(client, link, session, **fields)
    assert resp.status_code == 400
    assert message.lower() in resp.text.lower()
    assert _items(session) == before


def test_unknown_or_rotated_link_is_refused(client, session, rt, link):
    assert client.get("/submit/not-a-real-secret").status_code == 404
    with rt.db.transaction() as s:
        rotate_submit_secret(s.scalar(select(Partner).where(Partner.slug == "afiya-trust")))
    resp = client.get(link)
    assert resp.status_code == 404 and "not valid or has been replaced" in resp.text


def test_hostile_title_is_escaped_on_the_confirmation_page(client, session, link):
    resp = _submit(client, link, session, title="<script>alert(1)</script>")
    assert resp.status_code == 200
    assert "<script>alert(1)</script>" not in resp.text
    assert "&lt;script&gt;" in resp.text
