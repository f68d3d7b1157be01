"""`mailer bounces process`: DSN bounces and ARF complaints from a maildir, an mbox or
stdin, matched to deliveries by their VERP return path."""

from __future__ import annotations

import mailbox
from datetime import date

from sqlalchemy import select

from mailer.delivery.models import Delivery
from mailer.delivery.suppression import Bounce, soft_bounce_count
from subscribers.models import Subscriber
from subscribers.suppression import is_suppressed

PERIOD = date.today().strftime("%Y-%m")


def dsn(to: str, recipient: str, action: str, status: str) -> bytes:
    return f"""From: MAILER-DAEMON@mx.nhs.example
To: {to}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-b"

--dsn-b
Content-Type: text/plain

The mail system could not deliver your message.
--dsn-b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.nhs.example

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {status[0]}50 {status} mailbox trouble

--dsn-b
Content-Type: text/rfc822-headers

Subject: Your digest
--dsn-b--
""".replace("\n", "\r\n").encode()


def arf(return_path: str, recipient: str) -> bytes:
    return f"""From: fbl@isp.example
To: abuse-reports@ertg.example.org
Subject: Complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf-b"

--arf-b
Content-Type: text/plain

This is an email abuse report.
--arf-b
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ISP-FBL/1.0
Version: 1

--arf-b
Content-Type: message/rfc822

Return-Path: <{return_path}>
From: End Racism This Generation <digest@ertg.example.org>
To: {recipient}
Subject: Your digest

Hello.
--arf-b--
""".replace("\n", "\r\n").encode()


def test_bounces_and_complaints_from_maildir_mbox_and_stdin(app, rt, demo, queue, transport, tmp_path):
    from mailer.cli import main

    runner = app.test_cli_runner()
    assert runner.invoke(main, ["edition", "build", "--period", PERIOD]).exit_code == 0
    assert runner.invoke(main, ["edition", "send", PERIOD, "--wait"]).exit_code == 0
    verp = {m.recipient.lower(): m.sender for m in transport.messages}
    hard, soft, complainer = sorted(verp)[:3]

    box = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    box.add(dsn(verp[hard], hard, "failed", "5.1.1"))
    box.add(dsn(verp[soft], soft, "delayed", "4.2.2"))
    # A forged report (a return path we never signed) must change nothing.
    box.add(dsn("bounces+1-deadbeef@ertg.example.org", soft, "failed", "5.1.1"))
    box.add(b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot a report\r\n")
    result = runner.invoke(main, ["bounces", "process", str(tmp_path / "Maildir")])
    assert result.exit_code == 0, result.output
    assert "hard bounces 1, soft bounces 1, complaints 0, unmatched 1; suppressed 1" in result.output

    mbox = mailbox.mbox(str(tmp_path / "reports.mbox"))
    mbox.add(arf(verp[complainer], complainer))
    mbox.flush()
    result = runner.invoke(main, ["bounces", "process", str(tmp_path / "reports.mbox")])
    assert "complaints 1" in result.output and "suppressed 1" in result.output

    # stdin, as a mail server's pipe would deliver it: a second soft bounce is counted.
    result = runner.invoke(main, ["bounces", "process", "-"], input=dsn(verp[soft], soft, "failed", "4.4.1"))
    assert "soft bounces 1" in result.output

    with rt.db.transaction() as s:
        assert {e for e in (hard, complainer, soft) if is_suppressed(s, e)} == {hard, complainer}
        assert soft_bounce_count(s, soft) == 2
        statuses = dict(
            s.execute(
                select(Subscriber.email, Delivery.status).join(Delivery, Delivery.subscriber_id == Subscriber.id)
            ).all()
        )
        assert statuses[next(e for e in statuses if e.lower() == hard)] == "bounced"
        sub = s.scalar(select(Subscriber).where(Subscriber.email.ilike(complainer)))
        assert sub.status == "unsubscribed"
        from subscribers.suppression import current_hash

        assert s.scalar(select(Bounce.kind).where(Bounce.email_hash == current_hash(s, complainer))) == "complaint"
        # The log names nobody: no address in any column.
        for row in s.scalars(select(Bounce)):
            assert "@" not in row.email_hash and hard not in row.detail.lower() and complainer not in row.detail.lower()

    assert runner.invoke(main, ["bounces", "process", str(tmp_path / "missing")]).exit_code == 1

    # The next edition leaves the suppressed addresses out.
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
    assert runner.invoke(main, ["edition", "build", "--period", "2099-02"]).exit_code == 0
    assert runner.invoke(main, ["edition", "send", "2099-02", "--wait"]).exit_code == 0
    sent_to = {m.recipient.lower() for m in transport.messages}
    assert hard not in sent_to and complainer not in sent_to and soft in sent_to


def test_bounces_of_transactional_mail_are_matched_and_suppress_the_address(app, rt, demo, transport):
    """Issue 9 finding 14: confirmations, manage links, partner notices and test sends went
    out with the plain sender as return path, so their bounces matched nothing."""
    from mailer.actors.partners import send_partner_notice
    from mailer.actors.transactional import send_transactional
    from mailer.cli import main
    from mailer.content.intake import ItemDraft, submit_item
    from mailer.content.models import Partner, Topic

    with rt.db.transaction() as s:
        pending = Subscriber(email="typo@nhs.example", status="pending")
        s.add(pending)
        partner = s.scalars(select(Partner)).first()
        partner.contact_email = "gone@partner.example"  # notices go to the registered contact only
        item = submit_item(
            s,
            partner,
            ItemDraft(
                title="Clinic",
                summary="s",
                link="https://example.org/c",
                kind="news",
                topic_ids=[s.scalars(select(Topic)).first().id],
                contact_email="gone@partner.example",
            ),
            today=date.today(),
        )
        s.flush()
        pending_id, item_id = pending.id, item.id
    send_transactional("confirm", pending_id)
    send_partner_notice("receipt", item_id)
    runner = app.test_cli_runner()
    assert runner.invoke(main, ["edition", "build", "--period", PERIOD]).exit_code == 0
    assert (
        runner.invoke(
            main, ["edition", "test-send", PERIOD, "--to", "old-editor@campaign.example", "--topic", "heart-health"]
        ).exit_code
        == 0
    ), "test send"
    verp = {m.recipient: m.sender for m in transport.messages}
    assert len(set(verp.values())) == 3 and "digest@ertg.example.org" not in verp.values()

    reports = b"".join(  # one mbox of three hard bounces and a forgery
        b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + m.replace(b"\r\n", b"\n") + b"\n"
        for m in [
            dsn(verp["typo@nhs.example"], "typo@nhs.example", "failed", "5.1.1"),
            dsn(verp["gone@partner.example"], "gone@partner.example", "failed", "5.1.1"),
            dsn(verp["old-editor@campaign.example"], "old-editor@campaign.example", "failed", "5.1.1"),
            # The test send's return path is bound to its recipient: it cannot suppress another.
            dsn(verp["old-editor@campaign.example"], "victim@nhs.example", "failed", "5.1.1"),
        ]
    )
    result = runner.invoke(main, ["bounces", "process", "-"], input=reports)
    assert result.exit_code == 0, result.output
    assert "hard bounces 3, soft bounces 0, complaints 0, unmatched 1; suppressed 3" in result.output
    with rt.db.transaction() as s:
        for address in ("typo@nhs.example", "gone@partner.example", "old-editor@campaign.example"):
            assert is_suppressed(s, address), address
        assert not is_suppressed(s, "victim@nhs.example")
