"""Posting to a group by email (mailer/groups/posting.py, sending.py, copies.py and the
LMTP route mailer/inbound/groups.py): real LMTP sessions against the running receiver,
through the queue, to a real SMTP relay on loopback.

The DMARC lookup is a stub (no DNS query leaves the machine): see ``dmarc``."""

from __future__ import annotations

import re
import smtplib
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from mailer.boot import boot
from mailer.groups.models import GroupDelivery, GroupPost
from mailer.inbound.models import InboundMessage
from mailer.mail.transport import SMTPTransport
from mailer.settings.delivery import DeliveryConfig
from tests.conftest import BOTH_DIALECTS
from tests.mailservers import Relay, free_port

DOMAIN = "ertg.example.org"
POLICIES = {
    "_dmarc.nhs.example": ["v=DMARC1; p=none; rua=mailto:d@nhs.example"],
    "_dmarc.strict.example": ["v=DMARC1; p=reject"],
    "_dmarc.quarantine.example": ["v=spf1 -all", "v=DMARC1; p=quarantine; pct=100"],
}


@pytest.fixture(autouse=True)
def dmarc(monkeypatch):
    """DMARC answers from POLICIES; every name asked is recorded; broken.example fails."""
    from mailer.actors import groups

    asked = []

    def resolve(name):
        asked.append(name)
        if name.endswith("broken.example"):
            from mailer.groups.dmarc import LookupFailed

            raise LookupFailed("timed out")
        return POLICIES.get(name, [])

    monkeypatch.setattr(groups, "resolver", resolve)
    return asked


@pytest.fixture
def relay(rt):
    """Send through a real SMTP relay on loopback (embedded queue)."""
    r = Relay().start()
    env = {"SEND_BATCH_SIZE": "10", "SEND_CHUNK_SIZE": "5", "SEND_RETRY_SECONDS": "0.05"}
    settings = replace(rt.settings, smtp_url=r.url, delivery=DeliveryConfig.from_env(env))
    boot(settings, transport=SMTPTransport(r.url))
    yield r
    r.stop()


@pytest.fixture
def receiver(relay):
    from mailer import runtime
    from mailer.actors.inbound import process_inbound, router
    from mailer.lmtp import Receiver

    rt = runtime.current()
    r = Receiver(
        rt.db,
        router(),
        lambda message_id: rt.queue.send(process_inbound, message_id),
        port=free_port(),
        max_bytes=rt.settings.inbound_max_bytes,
    ).start()
    yield r
    r.stop()


def cli(app, *args):
    from mailer.cli import main

    result = app.test_cli_runner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def network(app, rt):
    """A group with an owner, three every-message members, one on the daily digest, one
    web only, and one who left."""
    cli(app, "groups", "create", "bme-network", "--name", "BME staff networks", "--owner", "chair@nhs.example")
    cli(
        app,
        "groups",
        "add",
        "bme-network",
        "priya@nhs.example",
        "sam@strict.example",
        "ade@gmail.com",
        "--basis",
        "legitimate-interests",
    )
    cli(app, "groups", "add", "bme-network", "daily@nhs.example", "--basis", "consent", "--delivery", "digest")
    cli(app, "groups", "add", "bme-network", "web@nhs.example", "--basis", "consent", "--delivery", "web")
    cli(app, "groups", "add", "bme-network", "gone@nhs.example", "--basis", "consent")
    cli(app, "groups", "remove", "bme-network", "gone@nhs.example")
    return f"bme-network@{DOMAIN}"


EVERY = {"chair@nhs.example", "priya@nhs.example", "sam@strict.example", "ade@gmail.com"}


def post(
    author="Priya Shah <priya@nhs.example>",
    to=f"bme-network@{DOMAIN}",
    subject="Joint event in March",
    extra="",
    body="Shall we plan a joint event with the university network?\r\n",
    message_id="<event-1@nhs.example>",
) -> bytes:
    return (
        f"From: {author}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\n"
        f"Message-ID: {message_id}\r\n{extra}\r\n{body}"
    ).encode()


def lmtp_send(receiver, sender, recipients, data):
    with smtplib.LMTP("127.0.0.1", receiver.port, timeout=10) as client:
        client.ehlo_or_helo_if_needed()
        assert client.mail(sender)[0] == 250
        rcpt = [client.rcpt(r) for r in recipients]
        accepted = sum(1 for code, _ in rcpt if code == 250)
        if not accepted:
            client.rset()
            return rcpt, []
        replies = [client.data(data)] + [client.getreply() for _ in range(accepted - 1)]
    return rcpt, replies


def outcomes(rt) -> list[str]:
    with rt.db.transaction() as s:
        return list(s.scalars(select(InboundMessage.outcome).order_by(InboundMessage.id)))


@BOTH_DIALECTS  # bulk fan-out, claims with RETURNING, binary message bodies
def test_a_members_post_reaches_every_member_once_with_the_list_headers(app, rt, relay, receiver, queue, network):
    reply = post(
        author="Sam Okafor <sam@strict.example>",
        subject="Re: Joint event in March",
        message_id="<reply-1@strict.example>",
        extra="In-Reply-To: <event-1@nhs.example>\r\nReferences: <event-1@nhs.example>\r\n"
        "Thread-Index: AdlQ3k9xYz==\r\nList-Id: <forged.elsewhere.example>\r\nX-Spam: yes\r\n",
    )
    for data, sender in ((post(), "priya@nhs.example"), (reply, "sam@strict.example")):
        rcpt, replies = lmtp_send(receiver, sender, [network], data)
        assert rcpt[0][0] == 250 and replies[0][0] == 250, (rcpt, replies)
        queue()
    assert outcomes(rt)[0].startswith("accepted as post 1 (member: a member's post)")

    counts = relay.counts()
    assert set(counts) == EVERY and set(counts.values()) == {2}  # one copy of each post each
    first, second = relay.parsed("priya@nhs.example")
    assert first["Subject"] == "Joint event in March"
    assert first["From"] == "Priya Shah <priya@nhs.example>"  # nhs.example: p=none, From kept
    assert first["Message-ID"] == "<event-1@nhs.example>"
    assert first["List-Id"] == f"BME staff networks <bme-network.{DOMAIN}>"
    assert first["List-Post"] == f"<mailto:bme-network@{DOMAIN}>"
    assert first["List-Help"] == "<https://digest.example.org/groups/bme-network>"
    assert first["List-Archive"] == "<https://digest.example.org/groups/bme-network/archive>"
    assert first["Archived-At"] == "<https://digest.example.org/groups/bme-network/posts/1>"
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["X-Loop"] == f"bme-network@{DOMAIN}"
    found = re.fullmatch(
        r"<(https://digest\.example\.org/groups/leave/\S+)>, <mailto:(unsubscribe\+g[0-9a-f-]+@\S+)\?subject=unsubscribe>",
        first["List-Unsubscribe"],
    )
    leave = found.group(1)  # one click (RFC 8058), and an address that removes this member when mailed
    footer = [p for p in first.walk() if p.get_content_type() == "text/plain"][-1].get_content()
    assert f"Leave the group: {leave}" in footer and "/groups/member/" in footer
    # Every member's leave link is their own.
    leaves = {m["List-Unsubscribe"] for r in EVERY for m in relay.parsed(r)[:1]}
    assert len(leaves) == len(EVERY)
    # Threading headers are kept; the author's own List-Id and other fields are not.
    assert second["In-Reply-To"] == "<event-1@nhs.example>" and second["References"] == "<event-1@nhs.example>"
    assert second["Thread-Index"] == "AdlQ3k9xYz=="
    assert second.get_all("List-Id") == [f"BME staff networks <bme-network.{DOMAIN}>"] and "X-Spam" not in second
    # The author's text arrives as written, and the footer names the group.
    assert first.get_body(("plain",)).get_content() == "Shall we plan a joint event with the university network?\r\n"
    assert footer.startswith("You get this as a member of BME staff networks.")
    # The return path is ours (VERP for the address), so bounces are matched.
    senders = {s for r, s, _ in relay.messages}
    assert all(s.startswith("bounces+a-") and s.endswith(f"@{DOMAIN}") for s in senders)

    # Delivering again (a redelivered queue message) sends nothing twice.
    from mailer.actors.groups import start_group_post
    from mailer.actors.inbound import process_inbound

    with rt.db.transaction() as s:
        first_id = s.scalar(select(InboundMessage.id).order_by(InboundMessage.id))
    process_inbound(first_id)
    start_group_post(1)
    queue()
    assert set(relay.counts().values()) == {2}
    with rt.db.transaction() as s:
        assert s.scalar(select(func.count(GroupDelivery.id))) == 2 * len(EVERY)
        assert s.scalar(select(func.count(GroupPost.id))) == 2


def test_every_copy_is_dkim_signed_over_the_list_headers(app, rt, relay, queue, network, dkim_key):
    import dkim

    from mailer.actors.inbound import process_inbound, router
    from mailer.lmtp import Receiver

    key, public = dkim_key
    env = {"DKIM_SELECTOR": "mail2026", "DKIM_PRIVATE_KEY_FILE": key}
    r = boot(replace(rt.settings, delivery=DeliveryConfig.from_env(env)), transport=SMTPTransport(relay.url))
    receiver = Receiver(r.db, router(), lambda i: r.queue.send(process_inbound, i), port=free_port()).start()
    try:
        reply = post(extra="In-Reply-To: <event-0@nhs.example>\r\nCc: ade@gmail.com\r\n")
        lmtp_send(receiver, "priya@nhs.example", [network], reply)
        queue()
    finally:
        receiver.stop()
    assert len(relay.messages) == len(EVERY)
    for _rcpt, _path, data in relay.messages:
        assert dkim.verify(data, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + public)
    msg = relay.parsed("chair@nhs.example")[0]
    signed = {h.strip().lower() for h in msg["DKIM-Signature"].split("h=")[1].split(";")[0].split(":")}
    assert {"from", "subject", "list-id", "list-post", "list-unsubscribe", "list-unsubscribe-post"} <= signed
    assert {"archived-at", "list-archive", "list-help", "in-reply-to", "cc", "message-id"} <= signed


def test_dmarc_strict_and_free_mail_authors_are_rewritten_others_kept(app, rt, relay, receiver, queue, network, dmarc):
    cli(app, "groups", "add", "bme-network", "kofi@broken.example", "lee@quarantine.example", "--basis", "consent")
    authors = {
        "Sam Okafor <sam@strict.example>": "rewritten",  # p=reject
        "Lee <lee@quarantine.example>": "rewritten",  # p=quarantine
        '"Ade, BME lead" <ade@gmail.com>': "rewritten",  # on the list: no lookup at all
        "Kofi <kofi@broken.example>": "rewritten",  # the lookup failed: the safe side
        "Priya Shah <priya@nhs.example>": "kept",  # p=none
    }
    for n, author in enumerate(authors):
        address = re.search(r"<(.+)>", author).group(1)
        lmtp_send(receiver, address, [network], post(author=author, message_id=f"<m{n}@x.example>"))
    queue()
    copies = {m["Message-ID"]: m for m in relay.parsed("chair@nhs.example")}
    assert len(copies) == 5
    sam = copies["<m0@x.example>"]
    assert sam["From"] == f"Sam Okafor via BME staff networks <bme-network@{DOMAIN}>"
    assert sam["Reply-To"] == "Sam Okafor <sam@strict.example>"
    assert copies["<m1@x.example>"]["From"].addresses[0].addr_spec == f"bme-network@{DOMAIN}"
    ade = copies["<m2@x.example>"]
    assert ade["From"].addresses[0].display_name == "Ade, BME lead via BME staff networks"
    assert ade["Reply-To"].addresses[0].addr_spec == "ade@gmail.com"
    assert copies["<m3@x.example>"]["Reply-To"].addresses[0].addr_spec == "kofi@broken.example"
    priya = copies["<m4@x.example>"]
    assert priya["From"] == "Priya Shah <priya@nhs.example>" and "Reply-To" not in priya
    assert not any("gmail.com" in name for name in dmarc)  # the list decides without DNS
    assert dmarc.count("_dmarc.strict.example") == 1  # cached


def test_a_mail_loop_between_two_groups_is_stopped(app, rt, relay, receiver, queue, network):
    """Group A has group B's address as a member and B has A's: a post to A reaches B,
    which recognises A's copy as group mail and drops it. Nothing loops, nothing answers."""
    cli(app, "groups", "create", "practices", "--name", "GP practices")
    cli(app, "groups", "add", "practices", "practice@nhs.example", f"bme-network@{DOMAIN}", "--basis", "consent")
    cli(app, "groups", "add", "bme-network", f"practices@{DOMAIN}", "--basis", "consent")
    lmtp_send(receiver, "priya@nhs.example", [network], post())
    queue()
    for _round in range(3):  # the MTA hands every copy for our own addresses back to us
        ours = [(r, d) for r, _, d in relay.messages if r.lower().endswith("@" + DOMAIN)]
        relay.messages[:] = [m for m in relay.messages if not m[0].lower().endswith("@" + DOMAIN)]
        for recipient, data in ours:
            rcpt, replies = lmtp_send(receiver, f"bounces+a-00000000@{DOMAIN}", [recipient], data)
            assert replies[0][0] == 250
        queue()
    got = relay.counts()
    assert got["practice@nhs.example"] == 0  # B never posted A's message
    assert got["priya@nhs.example"] == 1
    dropped = [o for o in outcomes(rt) if o.startswith("dropped")]
    assert dropped == [f"dropped (loop: our own group mail came back (X-Loop: bme-network@{DOMAIN}))"]
    with rt.db.transaction() as s:
        assert s.scalar(select(func.count(GroupPost.id))) == 1


def test_unknown_and_reserved_group_addresses_are_refused_at_rcpt(app, rt, relay, receiver, network):
    rcpt, replies = lmtp_send(
        receiver,
        "priya@nhs.example",
        [f"no-such-group@{DOMAIN}", f"bme-network+x@{DOMAIN}", "bme-network@elsewhere.example", f"postmaster@{DOMAIN}"],
        post(),
    )
    assert [code for code, _ in rcpt] == [550, 550, 550, 550] and replies == []


def chain_outcomes(rt) -> dict[str, str]:
    with rt.db.transaction() as s:
        rows = s.execute(select(InboundMessage.outcome, InboundMessage.status).order_by(InboundMessage.id)).all()
    return [(o or "", st) for o, st in rows]


def test_the_moderation_chain_in_its_order_through_lmtp(app, rt, relay, receiver, queue, network):
    """Each rule, by a message that only it catches; none of them is ever answered."""
    from mailer.groups import directory, posting

    with rt.db.transaction() as s:
        group = directory.get_group(s, "bme-network")
        posting.set_sender_rule(s, group, "troll@example.org", "ban")
        group.max_bytes = 250_000
    priya = "Priya Shah <priya@nhs.example>"
    cases = [
        ("priya@nhs.example", post(extra=f"X-Loop: practices@{DOMAIN}\r\n"), "dropped (loop"),
        ("priya@nhs.example", post(extra=f"List-Id: GP <practices.{DOMAIN}>\r\n"), "dropped (loop"),
        ("", post(), "dropped (automatic: sent by a machine (null sender)"),
        ("priya@nhs.example", post(extra="Auto-Submitted: auto-replied\r\n"), "dropped (automatic"),
        ("priya@nhs.example", post(extra="Precedence: bulk\r\n"), "dropped (automatic"),
        ("mailer-daemon@nhs.example", post(author="Mail Delivery <mailer-daemon@nhs.example>"), "dropped (automatic"),
        (
            "priya@nhs.example",
            post(
                extra='MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n',
                body="--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b--\r\n",
            ),
            "dropped (automatic",
        ),
        ("troll@example.org", post(author="troll@example.org"), "dropped (banned"),
        ("priya@nhs.example", post(author=priya, body=("x" * 70 + "\r\n") * 4_000), "held as post"),
        (
            "priya@nhs.example",
            post(extra="Cc: " + ",\r\n ".join(f"p{i}@nhs.example" for i in range(10_000)) + "\r\n"),
            "held as post",
        ),
        ("priya@nhs.example", post(subject="\r\n ".join(["=?utf-8?b?QQ==?="] * 1000)), "held as post"),
        (
            "priya@nhs.example",
            post(
                extra="MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
                body="<p>Hi</p><script>alert(1)</script>\r\n",
            ),
            "held as post",
        ),
        ("stranger@example.org", post(author="A Stranger <stranger@example.org>"), "held as post"),
        ("priya@nhs.example", post(), "accepted as post"),
    ]
    for sender, data, _ in cases:
        rcpt, replies = lmtp_send(receiver, sender or "<>", [network], data)
        assert replies and replies[0][0] == 250, (data[:200], rcpt, replies)
    queue()
    got = chain_outcomes(rt)
    assert len(got) == len(cases)
    for (outcome, status), (_, _, expected) in zip(got, cases, strict=True):
        assert status == "processed" and outcome.startswith(expected), (outcome, expected)
    reasons = [o.split("(", 1)[1] for o, _ in got if o.startswith("held")]
    assert reasons[1:] == [
        "recipients: names 10001 addresses in To and Cc (limit 25))",
        "headers: more than 200 encoded-words in the header)",
        "content: HTML with script or other active content)",
        "non-member: the sender is not a member of this group)",
    ]
    assert reasons[0].startswith("size: larger than the group's limit")
    # Only the last one went out; nobody was ever answered. The owner was told of each hold.
    copies = Counter(r for r, _, d in relay.messages if b"\r\nList-Id: " in d)
    assert copies == dict.fromkeys(EVERY, 1)
    notes = [m for m in relay.parsed("chair@nhs.example") if "List-Id" not in m]
    # A member hears each of their own held posts waits (four here); a stranger hears nothing.
    waiting = [m for m in relay.parsed("priya@nhs.example") if "List-Id" not in m]
    assert [m["Subject"] for m in waiting] == ["Your message to BME staff networks is waiting for a moderator"] * 4
    assert relay.counts()["stranger@example.org"] == 0
    assert len(notes) == 5 == len(relay.messages) - len(EVERY) - len(waiting)
    assert notes[-1]["Subject"] == "A message to BME staff networks is waiting for a moderator"
    assert "/groups/moderate/" in notes[-1].get_body(("plain",)).get_content()
    # The CLI lists what is held, with why.
    out = cli(app, "groups", "held", "bme-network")
    assert "5 held; they expire after 7 days." in out and "held: non-member" in out


@BOTH_DIALECTS  # bulk fan-out, claims with RETURNING, binary message bodies
def test_held_posts_approve_trust_reject_discard_and_expire(app, rt, relay, receiver, queue, network):
    from mailer.actors.groups import expire_held_posts

    cli(app, "groups", "create", "coalition", "--name", "Policy coalition", "--policy", "moderated")
    cli(app, "groups", "add", "coalition", "priya@nhs.example", "chair@nhs.example", "--basis", "consent")
    coalition = f"coalition@{DOMAIN}"
    for n, author in enumerate(
        ["priya@nhs.example", "stranger@example.org", "spam@example.org", "late@example.org", "priya@nhs.example"]
    ):
        lmtp_send(receiver, author, [coalition], post(author=author, to=coalition, message_id=f"<c{n}@x.example>"))
        queue()  # one at a time: the held posts are numbered in the order they were sent
    # Members moderated: all five held; the group has no moderators yet, and only the
    # member among the senders hears their posts wait.
    assert relay.counts() == {"priya@nhs.example": 2}
    relay.messages.clear()
    out = cli(app, "groups", "held", "coalition")
    assert "5 held" in out and "members' posts are moderated" in out

    cli(app, "groups", "approve", "1", "--trust")
    out = cli(app, "groups", "reject", "2", "--reason", "Please introduce yourself to the owners first.")
    assert "its sender is told why" in out
    cli(app, "groups", "discard", "3", "--ban")
    queue()
    assert relay.counts() == {"priya@nhs.example": 1, "chair@nhs.example": 1, "stranger@example.org": 1}
    notice = relay.parsed("stranger@example.org")[0]
    assert notice["Auto-Submitted"] == "auto-generated"
    assert "Please introduce yourself to the owners first." in notice.get_body(("plain",)).get_content()

    # Trusted now: Priya's next post goes straight out; the banned sender's is dropped.
    relay.messages.clear()
    lmtp_send(receiver, "priya@nhs.example", [coalition], post(to=coalition, message_id="<c9@x.example>"))
    lmtp_send(receiver, "spam@example.org", [coalition], post(author="spam@example.org", to=coalition))
    queue()
    assert relay.counts() == {"priya@nhs.example": 1, "chair@nhs.example": 1}
    assert outcomes(rt)[-1].startswith("dropped (banned")

    # Held too long: expired, and the sender told.
    relay.messages.clear()
    with rt.db.transaction() as s:
        for p in s.scalars(select(GroupPost).where(GroupPost.status == "held")):
            p.received_at = p.received_at - timedelta(days=8)
    rt.queue.send(expire_held_posts)
    queue()
    assert relay.counts() == {"late@example.org": 1, "priya@nhs.example": 1}
    late = relay.parsed("late@example.org")[0]
    assert "not approved within 7 days" in late.get_body(("plain",)).get_content()
    assert "Nothing held." in cli(app, "groups", "held", "coalition")


def test_malformed_and_oversized_mail_to_a_group_is_refused_and_nothing_is_stored(
    app, rt, relay, receiver, queue, network
):
    huge_header = b"From: priya@nhs.example\r\nX-Big: " + b"\r\n ".join([b"a" * 70] * 4_000) + b"\r\n\r\nbody\r\n"
    nested = post(
        extra="MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n",
        body="".join(f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(3000)),
    )
    for data in (b"no header here\r\n\r\nbody\r\n", huge_header, b"Subject: no from\r\n\r\nbody\r\n", nested):
        rcpt, replies = lmtp_send(receiver, "priya@nhs.example", [network], data)
        assert replies[0][0] == 501, replies
    # A broken MIME structure (a boundary that never comes) is accepted as text and posted.
    broken = post(extra='MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="never"\r\n', body="text\r\n")
    rcpt, replies = lmtp_send(receiver, "priya@nhs.example", [network], broken)
    assert replies[0][0] == 250
    queue()
    with rt.db.transaction() as s:
        assert s.scalar(select(func.count(InboundMessage.id))) == 1
        assert s.scalar(select(func.count(GroupPost.id))) == 1
    assert message_from_bytes(relay.messages[0][2], policy=policy.default)["List-Id"]


def test_a_post_whose_queue_message_was_lost_is_delivered_once_when_work_is_requeued(
    app, rt, relay, receiver, queue, network, monkeypatch
):
    """The process dies between committing the accepted post and enqueueing its delivery:
    the next start (or `mailer lmtp`'s sweep) finds it in the ledger and delivers it once."""
    from mailer.actors import inbound
    from mailer.actors.groups import requeue_group_posts, start_group_post

    original = inbound.enqueue_accepted
    monkeypatch.setattr(inbound, "enqueue_accepted", lambda message_id: None)  # lost with the crash
    lmtp_send(receiver, "priya@nhs.example", [network], post())
    queue()
    assert outcomes(rt)[0].startswith("accepted as post 1") and relay.messages == []
    monkeypatch.setattr(inbound, "enqueue_accepted", original)

    assert requeue_group_posts() == 1
    queue()
    assert relay.counts() == dict.fromkeys(EVERY, 1)
    assert requeue_group_posts() == 0  # nothing pending any more
    start_group_post(1)  # and a stray second start sends nothing
    queue()
    assert relay.counts() == dict.fromkeys(EVERY, 1)


@pytest.mark.dialects("postgresql")  # two connections deciding at once: PostgreSQL's row locks
def test_two_moderators_deciding_one_post_at_once_cannot_both_win(app, rt, network):
    from mailer.groups import directory, posting
    from mailer.groups.directory import GroupError

    raw = post(author="stranger@example.org")
    with rt.db.transaction() as s:
        received = posting.receive(
            s,
            directory.get_group(s, "bme-network"),
            message_from_bytes(raw, policy=policy.compat32),
            raw,
            "stranger@example.org",
            list_domain=DOMAIN,
            max_recipients=25,
        )
    assert received.action == "hold"
    with rt.db.transaction() as a:
        opened = a.get(GroupPost, received.post_id)  # moderator A opened it, and still holds it
        assert opened.status == "held"
        with rt.db.transaction() as b:
            posting.discard(b, received.post_id, by="moderator B")  # B was quicker
        with pytest.raises(GroupError, match="decided already"):
            posting.approve(a, received.post_id, by="moderator A")
    with rt.db.transaction() as s:
        done = s.get(GroupPost, received.post_id)
        assert (done.status, done.decided_by) == ("discarded", "moderator B")


def test_a_from_without_a_plain_address_is_held_and_goes_out_under_the_group_once_approved(
    app, rt, relay, receiver, queue, network
):
    odd = post(author="undisclosed-recipients:;")
    rcpt, replies = lmtp_send(receiver, "someone@example.org", [network], odd)
    assert replies[0][0] == 250
    queue()
    assert outcomes(rt)[0].startswith("held as post 1 (non-member")
    cli(app, "groups", "approve", "1")
    queue()
    (copy,) = [m for m in relay.parsed("chair@nhs.example") if "List-Id" in m]
    assert copy["From"] == f"A sender via BME staff networks <bme-network@{DOMAIN}>"
    assert "Reply-To" not in copy and set(relay.counts()) == EVERY


def test_an_announce_only_group_takes_posts_from_its_owners_only_and_says_list_post_no(app, rt, relay, receiver, queue):
    cli(
        app,
        "groups",
        "create",
        "news",
        "--name",
        "Campaign news",
        "--visibility",
        "announce",
        "--owner",
        "editor@ertg.example.org",
    )
    cli(app, "groups", "add", "news", "priya@nhs.example", "sam@strict.example", "--basis", "consent")
    news = f"news@{DOMAIN}"
    lmtp_send(receiver, "priya@nhs.example", [news], post(to=news, message_id="<n1@x.example>"))
    queue()  # filed before the next arrives: two worker threads would race for post 1
    lmtp_send(receiver, "editor@ertg.example.org", [news], post(author="Editor <editor@ertg.example.org>", to=news))
    queue()
    assert outcomes(rt)[0].startswith("held as post 1 (member: announce-only: only owners and moderators post)")
    assert outcomes(rt)[1].startswith("accepted as post 2")
    copies = [m for m in relay.parsed("sam@strict.example") if "List-Id" in m]
    assert len(copies) == 1 and copies[0]["List-Post"] == "NO"
    assert copies[0]["List-Id"] == f"Campaign news <news.{DOMAIN}>"
