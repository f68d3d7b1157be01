"""Partner notices are sent once even when the job runs again; a transient failure is
retried; the migration keeps rows that existed before it."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import create_engine, text

from mailer.content.intake import ItemDraft, submit_item
from mailer.content.models import Item, Partner
from mailer.mail.transport import TransientFailure
from tests.factories import make_partner, topic_ids


def _item(rt, contact="comms@partner.example.org"):
    pid, _, _ = make_partner(rt)
    with rt.db.transaction() as s:
        draft = ItemDraft(
            title="Heart screening",
            summary="s",
            link="https://example.org/x",
            kind="news",
            topic_ids=[topic_ids(s)["heart-health"]],
            contact_email=contact,
        )
        return submit_item(s, s.get(Partner, pid), draft, today=date.today()).id


def test_a_redelivered_notice_job_sends_one_email(rt, transport):
    from mailer.actors.partners import send_partner_notice

    item_id = _item(rt)
    send_partner_notice("receipt", item_id)
    send_partner_notice("receipt", item_id)
    assert len(transport.messages) == 1
    send_partner_notice("approved", item_id)  # not approved: nothing owed
    assert len(transport.messages) == 1


def test_a_transient_failure_releases_the_claim_for_the_retry(rt, transport, session):
    from mailer.actors.partners import send_partner_notice

    item_id = _item(rt)

    def refuse(*_a, **_kw):
        raise TransientFailure("421 try later")

    transport.send, real = refuse, transport.send
    with pytest.raises(TransientFailure):
        send_partner_notice("receipt", item_id)
    assert session.get(Item, item_id).receipt_sent_at is None
    transport.send = real
    send_partner_notice("receipt", item_id)
    assert len(transport.messages) == 1


def test_migration_keeps_existing_partners_and_items(tmp_path):
    from mailer.schema import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("INSERT INTO partners (id, slug, name, active) VALUES (1, 'afiya', 'Afiya Trust', 1)"))
        c.execute(
            text(
                "INSERT INTO items (id, partner_id, kind, title, summary, link, status, dated, submitted_at) "
                "VALUES (1, 1, 'news', 'Old', 'Old item', 'https://example.org', 'approved', '2026-11-02', '2026-11-02')"
            )
        )
    upgrade(url)
    with engine.connect() as c:
        p = c.execute(text("SELECT name, trusted, description FROM partners")).one()
        i = c.execute(text("SELECT title, featured, source, body_html FROM items")).one()
    engine.dispose()
    assert tuple(p) == ("Afiya Trust", 0, "") and tuple(i) == ("Old", 0, "form", "")


def test_notices_are_marked_auto_submitted_and_replies_go_to_the_editors(rt, transport):
    """Issue 9 finding 15: notices had no Auto-Submitted and no Reply-To."""
    from dataclasses import replace
    from email import message_from_bytes, policy

    from mailer.actors.partners import send_partner_notice
    from mailer.boot import boot

    item_id = _item(rt)
    send_partner_notice("receipt", item_id)
    boot(replace(rt.settings, reply_to="Digest editors <editors@ertg.example.org>"), transport=transport)
    with rt.db.transaction() as s:
        s.get(Item, item_id).status = "approved"
    send_partner_notice("approved", item_id)
    receipt, decision = (message_from_bytes(m.data, policy=policy.default) for m in transport.messages)
    assert receipt["Auto-Submitted"] == decision["Auto-Submitted"] == "auto-generated"
    assert receipt["Reply-To"] is None  # REPLY_TO unset: replies go to MAIL_FROM
    assert decision["Reply-To"].addresses[0].addr_spec == "editors@ertg.example.org"


def test_notice_names_the_sender_once_isolates_the_title_and_has_a_heading(rt, transport):
    """Issue 9 finding 18: the footer said "End Racism This Generation, End Racism This
    Generation, c/o ..."; an Urdu title was not isolated from the English sentence; no h1;
    a white band round the footer."""
    import re
    from email import message_from_bytes, policy

    from mailer.actors.partners import send_partner_notice

    item_id = _item(rt)
    with rt.db.transaction() as s:
        s.get(Item, item_id).title = "نسلی مساوات کے لیے مقامی سرجریوں کا عہد"
    send_partner_notice("receipt", item_id)
    msg = message_from_bytes(transport.messages[0].data, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert "“<bdi>نسلی مساوات کے لیے مقامی سرجریوں کا عہد</bdi>”" in html
    assert re.search(r"<h1\b[^>]*>We have received your item</h1>", html)
    for body in (html, text):
        assert body.count("End Racism This Generation, c/o Campaign Office") == 1
        assert "End Racism This Generation, End Racism This Generation" not in body
    at = html.index("c/o Campaign Office")
    band = html[[m.start() for m in re.finditer(r"<div[^>]*max-width:600px", html[:at])][-1] : at]
    assert band.startswith('<div class="muted"') and "#ffffff" not in band.lower()
