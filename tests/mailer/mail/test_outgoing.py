"""The one send path: every kind of email we send (digest, confirmation, manage link,
partner receipt and decision, editor's test sends from the CLI and the preview page) is
DKIM-signed and carries a return path of ours, through a real SMTP relay on loopback."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy

import pytest

from mailer import runtime
from mailer.content.intake import ItemDraft, submit_item
from mailer.content.moderation import approve
from mailer.digest import preview
from mailer.digest.editions import build_edition
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import FileOutbox
from mailer.mail.verp import ADDRESS, DELIVERY, NOTICE, SUBSCRIBER, ReturnPaths
from tests.conftest import csrf_token
from tests.factories import PERIOD, message_template, standard_world
from tests.mailer.delivery.test_engine import cli, use_relay
from tests.mailservers import Relay


@pytest.fixture
def signing_relay(rt, dkim_key):
    """This process sending through a real relay, with a DKIM key; yields (relay, public key)."""
    key, public = dkim_key
    relay = Relay().start()
    r = use_relay(rt, relay.url, DKIM_SELECTOR="mail2026", DKIM_PRIVATE_KEY_FILE=key)
    yield r, relay, public
    relay.stop()


def test_every_kind_of_email_is_dkim_signed_and_carries_our_return_path(signing_relay, session, queue, tmp_path):
    import dkim

    from mailer.actors.digest import start_edition
    from mailer.actors.partners import send_partner_notice
    from mailer.actors.transactional import send_transactional
    from mailer.app import create_app

    r, relay, public = signing_relay
    w = standard_world(session)
    amina = w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    pending = w.subscriber("new@x.org", topics=["sexual-health"], status="pending")
    partner = w.partners["naz"]
    partner.contact_email = "comms@naz.example.org"  # notices go to the registered contact only
    item = submit_item(
        session,
        partner,
        ItemDraft(
            title="Clinic evenings",
            summary="s",
            link="https://naz.example.org/c",
            kind="news",
            topic_ids=[w.topics["sexual-health"].id],
            contact_email="comms@naz.example.org",
        ),
        today=date(2026, 12, 5),
    )
    ed = build_edition(session, PERIOD)
    session.commit()
    expected = {  # recipient -> what its return path must name
        "amina@x.org": (DELIVERY, None),
        "new@x.org": (SUBSCRIBER, pending.id),
        "comms@naz.example.org": (NOTICE, item.id),
        "me@campaign.example": (ADDRESS, None),
        "editor@campaign.example": (ADDRESS, None),
    }

    runtime.current().queue.send(start_edition, ed.id)
    queue()
    send_transactional("confirm", pending.id)
    send_transactional("link", amina.id)
    send_partner_notice("receipt", item.id)
    with r.db.transaction() as s:
        approve(s, item.id, "editor")
    send_partner_notice("approved", item.id)
    app = create_app(r.settings, r.transport)
    assert cli(app, "edition", "test-send", PERIOD, "--to", "me@campaign.example", "--partner", "naz").exit_code == 0
    client = app.test_client()
    topic = w.topics["sexual-health"].id
    token = preview.preview_token(r.settings, ed)
    page = client.get(f"/preview/{token}?topic={topic}")
    resp = client.post(
        f"/preview/{token}", data={"csrf_token": csrf_token(page.text), "topic": topic, "to": "editor@campaign.example"}
    )
    assert "Sent a test to editor@campaign.example" in resp.text

    subjects = [message_from_bytes(data, policy=policy.default)["Subject"] for _, _, data in relay.messages]
    assert any(s.startswith("Please confirm") for s in subjects)  # confirmation
    assert any(s.startswith("Your link") for s in subjects)  # manage link
    assert any(s.startswith("Received:") for s in subjects) and any(s.startswith("Approved") for s in subjects)
    assert sum(s.startswith("[Test]") for s in subjects) == 2  # CLI and preview page
    assert len(relay.messages) == 7
    paths = ReturnPaths(r.settings.secret_key, r.settings.delivery, r.settings.sender_domain)
    for rcpt, return_path, data in relay.messages:
        assert dkim.verify(data, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + public), rcpt
        target = paths.target(return_path)
        kind, ident = (
            expected[rcpt] if rcpt != "amina@x.org" or target.kind == DELIVERY else (SUBSCRIBER, amina.id)
        )  # Amina got a digest and a manage link
        assert target.kind == kind, (rcpt, return_path)
        if ident is not None:
            assert target.id == ident
        if kind == ADDRESS:
            assert paths.covers(target, rcpt) and not paths.covers(target, "someone@else.example")


def test_relay_trouble_is_logged_once_per_episode_with_its_answer_and_once_when_it_recovers(caplog):
    import logging

    from mailer.mail.transport import RelayWatch, SMTPTransport, TransientFailure

    relay = Relay().start()
    now = [1000.0]
    transport = SMTPTransport(relay.url)
    transport.watch = RelayWatch(f"127.0.0.1:{relay.port}", clock=lambda: now[0])
    message = b"Subject: hi\r\n\r\nhello\r\n"
    caplog.set_level(logging.INFO, logger="mailer.mail.transport")

    def lines():
        return [r.getMessage() for r in caplog.records if r.name == "mailer.mail.transport"]

    try:
        transport.send("b@example.org", "r1@example.org", message)
        assert lines() == []  # all well: nothing said
        relay.busy = True
        for n in range(3):
            with pytest.raises(TransientFailure):
                transport.send("b@example.org", f"r{n}@example.org", message)
            now[0] += 30
        assert len(lines()) == 1 and "421" in lines()[0] and "refusing" in lines()[0]
        relay.busy = False
        transport.send("b@example.org", "r4@example.org", message)
        transport.send("b@example.org", "r5@example.org", message)
        assert len(lines()) == 2 and "accepting messages again after 90 s" in lines()[1]
    finally:
        transport.close()
        relay.stop()
    with pytest.raises(TransientFailure):  # down altogether: a new episode
        transport.send("b@example.org", "r6@example.org", message)
    assert len(lines()) == 3 and "cannot connect" in lines()[2]


def test_digest_copies_are_counted_in_the_sent_metric_in_tens_and_the_rest_at_close(settings, tmp_path):
    # Here, not at the top: prometheus-client chooses its storage when first imported.
    from prometheus_client import REGISTRY

    def sent() -> float:
        return REGISTRY.get_sample_value("mailer_emails_sent_total") or 0.0

    envelope = message_template().build(to_name="", to_address="a@example.org", text="Hi", html="<p>Hi</p>")
    outgoing = Outgoing(settings, FileOutbox(tmp_path))
    before = sent()
    for delivery_id in range(1, 24):
        outgoing.delivery(envelope, delivery_id)
    assert sent() - before == 20  # the last three wait for the batch's end
    outgoing.close()
    assert sent() - before == 23 and len(list(tmp_path.glob("*.eml"))) == 23
    outgoing.to_subscriber(envelope, 7)  # one email on its own is counted at once
    assert sent() - before == 24
