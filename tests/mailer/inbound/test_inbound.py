"""The LMTP receiver (`mailer lmtp`, mailer/lmtp.py and mailer/inbound/): real LMTP
sessions with smtplib.LMTP against the running receiver on a loopback port.

Unsubscribe by mail (the List-Unsubscribe mailto of every digest), DSN bounces to VERP
return paths, per-recipient answers, and the promise that an accepted message is in the
database before the 250 and is processed exactly once."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import sys
import time
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.delivery.models import Delivery
from mailer.inbound.models import InboundMessage
from subscribers.models import ConsentEvent, Subscriber
from subscribers.suppression import is_suppressed
from tests.factories import received_post
from tests.mailer.delivery.test_bounces import dsn
from tests.mailservers import free_port

PERIOD = date.today().strftime("%Y-%m")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def receiver(rt):
    """The receiver on a free loopback port, handing ids to the in-process queue."""
    from mailer.actors.inbound import process_inbound, router
    from mailer.lmtp import Receiver

    r = Receiver(
        rt.db,
        router(),
        lambda message_id: rt.queue.send(process_inbound, message_id),
        port=free_port(),
        max_bytes=rt.settings.inbound_max_bytes,
    ).start()
    yield r
    r.stop()


def lmtp(receiver) -> smtplib.LMTP:
    client = smtplib.LMTP("127.0.0.1", receiver.port, timeout=10)
    client.ehlo_or_helo_if_needed()  # LHLO: LMTP's EHLO
    return client


def transaction(client, sender: str, recipients: list[str], data: bytes):
    """One LMTP transaction: (the RCPT replies, the DATA replies: one per accepted recipient)."""
    assert client.mail(sender)[0] == 250
    rcpt = [client.rcpt(r) for r in recipients]
    accepted = sum(1 for code, _ in rcpt if code == 250)
    if not accepted:
        client.rset()
        return rcpt, []
    replies = [client.data(data)]
    replies += [client.getreply() for _ in range(accepted - 1)]
    return rcpt, replies


def mail(subject="unsubscribe", sender="reader@nhs.example", extra="") -> bytes:
    return (
        f"From: A Reader <{sender}>\r\nTo: unsubscribe@ertg.example.org\r\n"
        f"Subject: {subject}\r\nDate: Thu, 01 Jan 2026 09:00:00 +0000\r\n{extra}\r\n"
        "Please take me off this list.\r\n"
    ).encode()


def send_edition(app, period=PERIOD):
    from mailer.cli import main

    runner = app.test_cli_runner()
    assert runner.invoke(main, ["edition", "build", "--period", period]).exit_code == 0
    assert runner.invoke(main, ["edition", "send", period, "--wait"]).exit_code == 0


def unsubscribe_mailtos(transport) -> dict[str, str]:
    """recipient -> the mailto address of their copy's List-Unsubscribe."""
    out = {}
    for m in transport.messages:
        header = message_from_bytes(m.data, policy=policy.default)["List-Unsubscribe"]
        out[m.recipient.lower()] = re.search(r"<mailto:([^?>]+)\?subject=unsubscribe>", header).group(1)
    return out


def next_edition_recipients(app, rt, transport) -> set[str]:
    from mailer.content.models import Item, Partner, Topic

    with rt.db.transaction() as s:
        s.add(
            Item(
                partner_id=s.scalars(select(Partner)).first().id,
                kind="news",
                title="More",
                summary="More.",
                link="https://example.org/m",
                status="approved",
                dated=date(2099, 2, 2),
                topics=list(s.scalars(select(Topic))),
            )
        )
    transport.messages.clear()
    send_edition(app, "2099-02")
    return {m.recipient.lower() for m in transport.messages}


def consent(s, email):
    sub = s.scalar(select(Subscriber).where(func.lower(Subscriber.email) == email))
    return sub, [
        (e.kind, e.source)
        for e in s.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id).order_by(ConsentEvent.id))
    ]


def test_unsubscribe_by_mail_stops_the_next_digest_for_exactly_that_reader(app, rt, demo, queue, transport, receiver):
    send_edition(app)
    mailtos = unsubscribe_mailtos(transport)
    reader, autoreplier, other = sorted(mailtos)[:3]
    # Each copy names its own reader; none is the old mailbox that reached nobody.
    assert len(set(mailtos.values())) == len(mailtos)
    assert all(re.fullmatch(r"unsubscribe\+\d+-\d+-[0-9a-f]{20}@ertg\.example\.org", a) for a in mailtos.values())
    transport.messages.clear()

    with lmtp(receiver) as client:
        # A mail system may change the case of the local part: the token still counts.
        rcpt, replies = transaction(
            client, "someone-else@example.org", [mailtos[reader].upper()], mail(sender="someone-else@example.org")
        )
        assert rcpt[0][0] == 250 and replies[0][0] == 250, (rcpt, replies)
        # An out-of-office reply (null sender, Auto-Submitted) to another reader's address.
        rcpt, replies = transaction(
            client, "<>", [mailtos[autoreplier]], mail("Out of office", extra="Auto-Submitted: auto-replied\r\n")
        )
        assert replies[0][0] == 250, replies
    queue()

    with rt.db.transaction() as s:
        for email in (reader, autoreplier):
            sub, events = consent(s, email)
            assert sub.status == "unsubscribed" and events[-1] == ("unsubscribed", "email"), email
            assert is_suppressed(s, email)
        sub, events = consent(s, other)
        assert sub.status == "confirmed" and "unsubscribed" not in [k for k, _ in events]
        rows = list(s.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        assert [r.status for r in rows] == ["processed", "processed"]
        assert rows[0].outcome == "unsubscribed"
        assert rows[1].outcome == "unsubscribed (null sender; not answered)"
        assert rows[0].raw == b"" and rows[0].mail_from == ""  # done: nobody's mail kept
    assert transport.messages == []  # nothing answered, auto-reply or not

    sent_to = next_edition_recipients(app, rt, transport)
    assert reader not in sent_to and autoreplier not in sent_to and other in sent_to


def test_forged_revoked_and_unknown_unsubscribe_addresses_are_refused_and_change_nothing(
    app, rt, demo, queue, transport, receiver
):
    from subscribers.address_tokens import AddressTokens
    from subscribers.service import revoke_links

    send_edition(app)
    mailtos = unsubscribe_mailtos(transport)
    victim, revoked = sorted(mailtos)[:2]
    sid = mailtos[victim].split("+")[1].split("-")[0]
    with rt.db.transaction() as s:
        revoke_links(s, consent(s, revoked)[0])
        events_before = s.scalar(select(func.count(ConsentEvent.id)))
    local, domain = mailtos[victim].split("@")
    refused = [
        f"unsubscribe+{sid}-0-{'0' * 20}@{domain}",  # forged signature
        f"unsubscribe+{int(sid) + 1}-0-{local.rsplit('-', 1)[1]}@{domain}",  # another reader's id
        "unsubscribe+" + AddressTokens("another-key").make(int(sid), 0) + "@" + domain,
        f"unsubscribe@{domain}",  # the bare mailbox names nobody
        "unsubscribe+" + AddressTokens("test-secret-key").make(0, 0) + "@" + domain,  # test sends' stand-in
        "unsubscribe+" + AddressTokens("test-secret-key").make(987654, 0) + "@" + domain,  # nobody
        mailtos[revoked],  # replaced by "replace all my links"
        f"{local}@elsewhere.example",  # a valid token at a domain that is not ours
        "bounces+1-deadbeef@ertg.example.org",  # a forged return path
        "staff-network@ertg.example.org",  # a group address: no groups yet
    ]
    with lmtp(receiver) as client:
        rcpt, replies = transaction(client, "attacker@example.org", refused, mail())
    assert [code for code, _ in rcpt] == [550] * len(refused)
    assert all(b"5.1.1" in text for _, text in rcpt) and replies == []
    queue()
    with rt.db.transaction() as s:
        assert s.scalar(select(func.count(InboundMessage.id))) == 0
        assert s.scalar(select(func.count(ConsentEvent.id))) == events_before
        assert consent(s, victim)[0].status == "confirmed" and not is_suppressed(s, victim)


def test_a_dsn_arriving_over_lmtp_at_a_return_path_suppresses_the_hard_bounced_address(
    app, rt, demo, queue, transport, receiver
):
    send_edition(app)
    verp = {m.recipient.lower(): m.sender for m in transport.messages}
    hard, soft = sorted(verp)[:2]
    # The reports' To: names the bare mailbox: the envelope recipient is what matches.
    with lmtp(receiver) as client:
        for address, action, status in ((hard, "failed", "5.1.1"), (soft, "delayed", "4.2.2")):
            rcpt, replies = transaction(
                client, "<>", [verp[address]], dsn("bounces@ertg.example.org", address, action, status)
            )
            assert replies[0][0] == 250, replies
    queue()
    with rt.db.transaction() as s:
        assert is_suppressed(s, hard) and not is_suppressed(s, soft)
        statuses = dict(
            s.execute(
                select(func.lower(Subscriber.email), Delivery.status).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
        assert statuses[hard] == "bounced" and statuses[soft] == "sent"
        outcomes = list(s.scalars(select(InboundMessage.outcome).order_by(InboundMessage.id)))
        assert outcomes == [
            "hard 1, soft 0, complaints 0, unmatched 0, suppressed 1",
            "hard 0, soft 1, complaints 0, unmatched 0, suppressed 0",
        ]
    assert hard not in next_edition_recipients(app, rt, transport)


def test_an_accepted_message_is_stored_before_the_250_and_processed_once_after_a_crash(
    app, rt, demo, settings, transport, receiver, tmp_path
):
    from mailer.actors.inbound import process_inbound

    send_edition(app)
    reader = sorted(unsubscribe_mailtos(transport).items())[0]
    rt.queue.stop()  # the queue is stopped: nothing processes what is enqueued
    actor = rt.queue.broker.get_actor(process_inbound.__name__)
    receiver.handler.enqueue = lambda message_id: actor.send(message_id)  # (queue.send restarts it)
    with lmtp(receiver) as client:
        _, replies = transaction(client, "reader@nhs.example", [reader[1]], mail())
    assert replies[0][0] == 250
    message_id = int(re.search(rb"message (\d+)", replies[0][1]).group(1))
    with rt.db.transaction() as s:
        row = s.get(InboundMessage, message_id)
        assert (row.status, row.route, row.recipient) == ("received", "unsubscribe", reader[1])
        assert row.raw == mail() and row.mail_from == "reader@nhs.example"
        assert consent(s, reader[0])[0].status == "confirmed"
    rt.queue.broker.flush_all()  # the process dies: its in-process queue goes with it

    # A new `mailer lmtp` process finds the message waiting and processes it.
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": "test-secret-key",
        "MAIL_FROM": settings.mail_from,
        "BASE_URL": settings.base_url,
        "MAILER_ENV": "test",
        "VAR_DIR": str(tmp_path / "var2"),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    env.pop("REDIS_URL", None)
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mailer"), "lmtp", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with rt.db.transaction() as s:
                if s.get(InboundMessage, message_id).status != "received":
                    break
            time.sleep(0.05)
        # It answers LMTP too.
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo_or_helo_if_needed()
            assert client.mail("x@example.org")[0] == 250
            assert client.rcpt("nobody@ertg.example.org")[0] == 550
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert "1 accepted message(s) re-queued" in output
    with rt.db.transaction() as s:
        row = s.get(InboundMessage, message_id)
        assert (row.status, row.outcome) == ("processed", "unsubscribed")
        events = consent(s, reader[0])[1]
        assert events.count(("unsubscribed", "email")) == 1
    process_inbound(message_id)  # a redelivered queue message: nothing happens twice
    with rt.db.transaction() as s:
        assert consent(s, reader[0])[1] == events
        assert s.get(InboundMessage, message_id).outcome == "unsubscribed"


def test_oversized_and_malformed_messages_are_refused_per_recipient_and_not_stored(
    app, rt, demo, queue, transport, receiver
):
    send_edition(app)
    a, b = sorted(unsubscribe_mailtos(transport).values())[:2]
    big = mail() + b"\r\n".join([b"y" * 76] * 140_000) + b"\r\n"
    assert len(big) > 10_000_000
    with lmtp(receiver) as client:
        _, replies = transaction(client, "reader@nhs.example", [a, b], big)
        assert [code for code, _ in replies] == [552, 552], replies
        for broken in (
            b"this is not a header\r\n\r\nbody\r\n",
            b"From: a@example.org\r\nSubject: hi\r\nno colon on this line\r\n\r\nbody\r\n",
            b"Subject: no From field\r\n\r\nbody\r\n",
            b"From: a@example.org\r\nX-Bad\0: nul\r\n\r\nbody\r\n",
        ):
            _, replies = transaction(client, "reader@nhs.example", [a, b], broken)
            assert [code for code, _ in replies] == [501, 501], (broken, replies)
            assert all(b"5.6.0 Malformed message" in text for _, text in replies)
        # The session goes on: a good message after the refused ones is accepted.
        _, replies = transaction(client, "reader@nhs.example", [a], mail())
        assert [code for code, _ in replies] == [250]
    queue()
    with rt.db.transaction() as s:
        assert s.scalar(select(func.count(InboundMessage.id))) == 1


def test_a_mix_of_good_and_unknown_recipients_gets_one_answer_each(app, rt, demo, queue, transport, receiver):
    send_edition(app)
    mailtos = unsubscribe_mailtos(transport)
    verp = {m.recipient.lower(): m.sender for m in transport.messages}
    reader, other = sorted(mailtos)[:2]
    recipients = [
        mailtos[reader],
        "staff-network@ertg.example.org",
        verp[other],
        "someone@elsewhere.example",
        "bounces@ertg.example.org",
    ]
    with lmtp(receiver) as client:
        rcpt, replies = transaction(client, "reader@nhs.example", recipients, mail())
    assert [code for code, _ in rcpt] == [250, 550, 250, 550, 250]
    assert [code for code, _ in replies] == [250, 250, 250]
    queue()
    with rt.db.transaction() as s:
        rows = list(s.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        assert [(r.route, r.recipient, r.status) for r in rows] == [
            ("unsubscribe", mailtos[reader], "processed"),
            ("bounce", verp[other], "processed"),
            ("bounce", "bounces@ertg.example.org", "processed"),
        ]
        assert rows[1].outcome == "no bounce or complaint report in it"
        assert consent(s, reader)[0].status == "unsubscribed"
        assert consent(s, other)[0].status == "confirmed" and not is_suppressed(s, other)


def test_the_inbound_domain_loads_without_web_queue_or_smtp_libraries():
    """mailer/inbound is domain code: the receiver and the actor are its edges."""
    code = (
        "import sys, mailer.inbound.store, mailer.inbound.handlers; "
        "print(sorted(m for m in ('flask', 'dramatiq', 'aiosmtpd', 'click') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_leave_by_mail_removes_exactly_that_member_from_that_group(app, rt, queue, transport, receiver):
    from mailer.actors.groups import start_group_post
    from mailer.cli import main
    from mailer.groups import sending
    from mailer.groups.models import GroupConsentEvent, GroupMember
    from subscribers.address_tokens import AddressTokens

    sending_dmarc = pytest.MonkeyPatch()
    from mailer.actors import groups as group_actors

    sending_dmarc.setattr(group_actors, "resolver", lambda name: [])  # no DNS from tests
    runner = app.test_cli_runner()
    for slug in ("network", "coalition"):
        assert runner.invoke(main, ["groups", "create", slug, "--name", slug.title()]).exit_code == 0
        assert (
            runner.invoke(
                main, ["groups", "add", slug, "a@nhs.example", "b@nhs.example", "--basis", "consent"]
            ).exit_code
            == 0
        )

    def post_to(slug, author="a@nhs.example"):
        raw = f"From: {author}\r\nSubject: Hi {slug}\r\nMessage-ID: <{slug}-{author}>\r\n\r\nHi\r\n"
        with rt.db.transaction() as s:
            got = received_post(s, slug, raw.encode(), author)
        rt.queue.send(start_group_post, got.post_id)
        queue()

    try:
        post_to("network")
        mailtos = unsubscribe_mailtos(transport)
        assert set(mailtos) == {"a@nhs.example", "b@nhs.example"}
        assert all(re.fullmatch(r"unsubscribe\+g\d+-\d+-[0-9a-f]{20}@ertg\.example\.org", m) for m in mailtos.values())
        member_id = int(mailtos["a@nhs.example"].split("+g")[1].split("-")[0])
        domain = mailtos["a@nhs.example"].split("@")[1]
        refused = [
            f"unsubscribe+g{member_id}-1-{'0' * 20}@{domain}",  # forged
            # a digest's unsubscribe token for the same number leaves no group
            "unsubscribe+g" + AddressTokens("test-secret-key").make(member_id, 1) + "@" + domain,
        ]
        with lmtp(receiver) as client:
            rcpt, _ = transaction(client, "x@example.org", refused, mail())
            assert [c for c, _ in rcpt] == [550, 550]
            rcpt, replies = transaction(
                client, "someone@example.org", [mailtos["a@nhs.example"].upper()], mail(sender="someone@example.org")
            )
            assert rcpt[0][0] == 250 and replies[0][0] == 250, (rcpt, replies)
        queue()
        with rt.db.transaction() as s:
            rows = {(m.group.slug, m.email): m.status for m in s.scalars(select(GroupMember).order_by(GroupMember.id))}
            assert rows == {
                ("network", "a@nhs.example"): "left",
                ("network", "b@nhs.example"): "active",
                ("coalition", "a@nhs.example"): "active",  # only that group
                ("coalition", "b@nhs.example"): "active",
            }
            event = s.scalars(
                select(GroupConsentEvent)
                .where(GroupConsentEvent.member_id == member_id)
                .order_by(GroupConsentEvent.id.desc())
            ).first()
            assert (event.kind, event.source) == ("left", "email")
            assert s.scalars(select(InboundMessage)).one().outcome.startswith("left group")
        transport.messages.clear()
        post_to("network", "b@nhs.example")
        assert {m.recipient for m in transport.messages} == {"b@nhs.example"}  # and nothing answered
        with rt.db.transaction() as s:
            assert sending.progress(s, 2) == {"sent": 1}
    finally:
        sending_dmarc.undo()
