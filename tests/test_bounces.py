"""`mailer bounces process`: DSN bounces and ARF complaints from a maildir, an mbox or
stdin, matched to deliveries by their VERP return path."""
from __future__ import annotations

import mailbox
from datetime import date

from sqlalchemy import select

from mailer.delivery.models import Delivery
from mailer.delivery.suppression import Bounce, soft_bounce_count
from subscribers.suppression import is_suppressed
from subscribers.models import Subscriber

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
        statuses = dict(s.execute(select(Subscriber.email, Delivery.status)
                                  .join(Delivery, Delivery.subscriber_id == Subscriber.id)).all())
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
        s.add(Item(partner_id=s.scalars(select(Partner)).first().id, kind="news", title="More",
                   summary="More.", link="https://example.org/m", status="approved",
                   dated=date(2099, 2, 2), topics=list(s.scalars(select(Topic)))))
    transport.messages.clear()
    assert runner.invoke(main, ["edition", "build", "--period", "2099-02"]).exit_code == 0
    assert runner.invoke(main, ["edition", "send", "2099-02", "--wait"]).exit_code == 0
    sent_to = {m.recipient.lower() for m in transport.messages}
    assert hard not in sent_to and complainer not in sent_to and soft in sent_to
