"""The partner submission form behind each partner's secret link."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.content.models import Item, Partner, Topic
from mailer.content.partners import rotate_submit_secret
from tests.conftest import csrf_token


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
