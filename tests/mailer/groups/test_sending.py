"""The group delivery ledger (mailer/groups/sending.py) against a real SMTP relay on
loopback: suppressed members skipped, a refused address failed and suppressed, a deferred
one retried until it is delivered, once."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from mailer.boot import boot
from mailer.cli import main
from mailer.groups.models import GroupDelivery, GroupMember
from mailer.mail.transport import SMTPTransport
from mailer.settings.delivery import DeliveryConfig
from subscribers.suppression import is_suppressed, suppress
from tests.conftest import BOTH_DIALECTS
from tests.factories import received_post
from tests.mailservers import Relay


@pytest.fixture(autouse=True)
def dmarc(monkeypatch):
    from mailer.actors import groups

    monkeypatch.setattr(groups, "resolver", lambda name: [])  # no DNS from tests


def start(rt, app, queue, relay: Relay, members: list[str]):
    settings = replace(
        rt.settings,
        smtp_url=relay.url,
        delivery=DeliveryConfig.from_env({"SEND_CHUNK_SIZE": "2", "SEND_RETRY_SECONDS": "0.05"}),
    )
    r = boot(settings, transport=SMTPTransport(relay.url))
    runner = app.test_cli_runner()
    assert runner.invoke(main, ["groups", "create", "network", "--name", "Network"]).exit_code == 0
    assert runner.invoke(main, ["groups", "add", "network", *members, "--basis", "consent"]).exit_code == 0
    return r


def post_and_deliver(r, queue, author="a@nhs.example"):
    from mailer.actors.groups import start_group_post

    raw = f"From: {author}\r\nSubject: Hello\r\nMessage-ID: <x@nhs.example>\r\n\r\nHi all\r\n".encode()
    with r.db.transaction() as s:
        received = received_post(s, "network", raw, author)
    assert received.action == "accept"
    r.queue.send(start_group_post, received.post_id)
    queue()


def ledger(r) -> dict[str, tuple[str, int, str | None]]:
    with r.db.transaction() as s:
        rows = s.execute(
            select(GroupMember.email, GroupDelivery.status, GroupDelivery.attempts, GroupDelivery.error).join(
                GroupMember, GroupMember.id == GroupDelivery.member_id
            )
        ).all()
    return {e: (st, n, err) for e, st, n, err in rows}


@BOTH_DIALECTS
def test_suppressed_skipped_refused_failed_and_suppressed_deferred_retried_once(app, rt, queue):
    relay = Relay(refuse=("gone@",), defer={"slow@": 2}).start()
    try:
        members = ["a@nhs.example", "b@nhs.example", "gone@nhs.example", "slow@nhs.example", "quiet@nhs.example"]
        r = start(rt, app, queue, relay, members)
        with r.db.transaction() as s:
            suppress(s, "quiet@nhs.example", "complaint")
        post_and_deliver(r, queue)
    finally:
        relay.stop()
    assert relay.counts() == {"a@nhs.example": 1, "b@nhs.example": 1, "slow@nhs.example": 1}
    got = ledger(r)
    assert got["a@nhs.example"] == ("sent", 1, None)
    assert got["slow@nhs.example"][:2] == ("sent", 3)  # deferred twice, then delivered
    assert got["gone@nhs.example"][0] == "failed" and "5.1.1" in got["gone@nhs.example"][2]
    assert got["quiet@nhs.example"] == ("skipped", 0, "the address is on the suppression list")
    with r.db.transaction() as s:
        assert is_suppressed(s, "gone@nhs.example")  # the mailbox is gone: never again


def post(r, subject, body, author, message_id, in_reply_to="", name="", at=None):
    """A post accepted by the chain (approved at ``at``, default now)."""
    from mailer.groups.models import GroupPost

    head = f"From: {name} <{author}>\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\r\n"
    raw = (head + "\r\n" + body).encode()
    with r.db.transaction() as s:
        received = received_post(s, "network", raw, author)
        assert received.action == "accept"
        if at is not None:
            s.get(GroupPost, received.post_id).decided_at = at
    return received.post_id


def choose(r, email, mode):
    from mailer.groups import directory, service

    with r.db.transaction() as s:
        service.set_delivery(s, service.find_member(s, directory.get_group(s, "network"), email), mode)


def text_of(msg) -> str:
    return msg.get_body(("plain",)).get_content()


@BOTH_DIALECTS
def test_daily_digest_one_email_a_day_with_the_days_threads_web_only_gets_nothing(app, rt, queue):
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from mailer.actors.groups import send_daily_digests, start_group_post

    relay = Relay().start()
    try:
        members = ["every@nhs.example", "daily@nhs.example", "web@nhs.example", "priya@nhs.example"]
        r = start(rt, app, queue, relay, members)
        choose(r, "daily@nhs.example", "digest")
        choose(r, "web@nhs.example", "web")
        choose(r, "priya@nhs.example", "web")
        zone = ZoneInfo(r.settings.schedule_timezone)
        day = datetime(2026, 11, 30, tzinfo=zone)
        noon = (day + timedelta(hours=12)).astimezone(timezone.utc)
        first = post(r, "Joint event in March?", "Shall we meet?\r\n", "priya@nhs.example", "<a@x>", name="Priya")
        reply = post(
            r,
            "Re: Joint event in March?",
            "Yes, Leeds works for us.\r\n\r\nOn Mon, 30 Nov 2026 at 10:00, Priya <priya@nhs.example> wrote:\r\n"
            "> Shall we meet?\r\n",
            "every@nhs.example",
            "<b@x>",
            in_reply_to="<a@x>",
            name="Sam",
        )
        outlook = post(  # NHSmail's Outlook: no In-Reply-To, an "RE:" subject and the quote below
            r,
            "RE: Joint event in March?",
            "Count us in.\r\n\r\nFrom: Priya <priya@nhs.example>\r\nSent: 30 November 2026 10:00\r\n"
            "To: network@ertg.example.org\r\nSubject: Joint event in March?\r\n\r\nShall we meet?\r\n",
            "every@nhs.example",
            "<o@x>",
            name="Sam",
        )
        other = post(r, "<script>alert(1)</script> {{ 7*7 }}", "Minutes attached\r\n", "every@nhs.example", "<c@x>")
        late = post(r, "Next day", "Tomorrow's\r\n", "every@nhs.example", "<d@x>")
        with r.db.transaction() as s:
            from mailer.groups.models import GroupPost

            for n, pid in enumerate((first, reply, outlook, other)):
                s.get(GroupPost, pid).decided_at = noon + timedelta(minutes=n)
            s.get(GroupPost, late).decided_at = noon + timedelta(days=1)
        for pid in (first, reply, outlook, other):
            r.queue.send(start_group_post, pid)
        queue()
        r.queue.send(send_daily_digests, "2026-11-30")
        queue()
        r.queue.send(send_daily_digests, "2026-11-30")  # a second firing: nobody gets it twice
        queue()
    finally:
        relay.stop()
    counts = relay.counts()
    assert counts["daily@nhs.example"] == 1  # one digest, no per-post copies
    assert counts["web@nhs.example"] == 0 and counts["priya@nhs.example"] == 0  # web only: no email
    assert counts["every@nhs.example"] == 4  # every message: its copies, no digest
    (digest,) = relay.parsed("daily@nhs.example")
    assert digest["Subject"].startswith("[Network] Daily digest, Monday 30 November 2026: 2 topics, 4 messages")
    assert digest["List-Id"] == "Network <network.ertg.example.org>"
    unsubscribe = digest["List-Unsubscribe"]
    assert "/groups/leave/" in unsubscribe and "mailto:unsubscribe+g" in unsubscribe
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # RFC 8058: the mail client's POST, no cookie, no CSRF token, leaves at once.
    leave = unsubscribe.split("<", 1)[1].split(">", 1)[0].removeprefix(r.settings.base_url)
    assert app.test_client().post(leave, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with r.db.transaction() as s:
        from mailer.groups import directory, service

        assert service.find_member(s, directory.get_group(s, "network"), "daily@nhs.example").status == "left"
    text = text_of(digest)
    assert "== Joint event in March? ==" in text
    assert "3 messages from Priya, Sam" in text
    assert "Yes, Leeds works for us." in text and "> Shall we meet?" not in text and "wrote:" not in text
    assert "Count us in." in text and "Sent: 30 November" not in text  # Outlook's quote trimmed too
    assert text.count("Shall we meet?") == 1  # the first message, once
    assert f"/groups/network/threads/{first}" in text
    assert "Tomorrow's" not in text  # the next day's post waits for the next day's digest
    assert "nhs.example" not in text.split("It was sent to")[0]  # posters by name, never address
    html = digest.get_body(("html",)).get_content()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<script>alert(1)</script> {{ 7*7 }}" in text  # template syntax stays text
    with r.db.transaction() as s:
        rows = s.execute(select(GroupDelivery.status, GroupDelivery.digest_id)).all()
    assert sorted(st for st, d in rows if d is not None) == ["sent"]


@BOTH_DIALECTS
def test_daily_digest_resumes_after_a_crash_and_sends_nobody_twice(app, rt, queue, monkeypatch):
    """The job dies after the fan-out's commit with one copy already out: at start-up the
    pending rest is sent (requeue_group_posts), the one already sent is not again, and a
    late second firing of the day's job adds nothing."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from mailer.actors.groups import requeue_group_posts, send_daily_digests
    from mailer.groups import daily, sending
    from mailer.groups.models import GroupPost

    renders = []
    real_render = daily.render_once
    monkeypatch.setattr(daily, "render_once", lambda *a: renders.append(1) or real_render(*a))
    relay = Relay().start()
    try:
        members = ["a@nhs.example", "b@nhs.example", "c@nhs.example"]
        r = start(rt, app, queue, relay, members)
        for m in members:
            choose(r, m, "digest")
        pid = post(r, "Rota", "Who covers Friday?\r\n", "a@nhs.example", "<rota@x>", name="Ade")
        day = datetime.now(ZoneInfo(r.settings.schedule_timezone)).date() - timedelta(days=1)
        start_utc, _ = daily.day_window(day, r.settings.schedule_timezone)
        with r.db.transaction() as s:
            s.get(GroupPost, pid).decided_at = start_utc + timedelta(hours=9)
        # What the job did before it was killed: the digest row and its ledger rows...
        with r.db.transaction() as s:
            (group_id,) = daily.groups_with_posts(s, start_utc, start_utc + timedelta(days=1))
            digest = daily.open_digest(s, group_id, day)
            ids = sending.fan_out_digest(s, digest.id)
        assert len(ids) == 3
        # ...and one copy out (a batch of one), the rest never enqueued.
        from mailer.actors.groups import dmarc_policies

        sending.deliver(r.db, r.transport, r.settings, dmarc_policies(), ids[:1])
        assert sum(relay.counts().values()) == 1
        assert requeue_group_posts() >= 1  # start-up: pending digest deliveries of recent days
        queue()
        r.queue.send(send_daily_digests, day.isoformat())  # the day's job, firing late
        queue()
    finally:
        relay.stop()
    assert relay.counts() == {m: 1 for m in members}
    assert len(renders) == 1  # rendered once for the group and day, whatever the batches
    with r.db.transaction() as s:
        assert sending.digest_progress(s, digest.id) == {"sent": 3}


def fanned_out(r, members_n: int, author: str = "a@nhs.example") -> list[int]:
    """An accepted post fanned out to the group's members, nothing enqueued (the job that
    would have sent them died, or its queue messages were lost)."""
    from mailer.groups import sending

    raw = f"From: {author}\r\nSubject: Rota\r\nMessage-ID: <rota@nhs.example>\r\n\r\nWho covers Friday?\r\n".encode()
    with r.db.transaction() as s:
        received = received_post(s, "network", raw, author)
        ids = sending.fan_out(s, received.post_id)
    assert len(ids) == members_n
    return ids


@BOTH_DIALECTS
def test_a_dead_workers_claim_is_swept_to_unknown_and_pending_and_a_live_claims_heartbeat_keeps_it(app, rt, queue):
    """A worker killed (SIGKILL) in the middle of a claim of three: the lowest of its rows
    (the one that may have reached the relay) becomes `unknown` and is not resent, the two
    never handed over go back to pending and are delivered once by the keeper's sweep. A
    claim of this process, as old, is kept alive by the keeper's heartbeat and left alone.
    `groups status` counts them; `groups resend-unknown` sends the unknown one again."""
    from datetime import timedelta

    from sqlalchemy import update

    from mailer.actors.groups import recover_groups
    from mailer.db import utcnow
    from mailer.groups import sending

    relay = Relay().start()
    try:
        members = [f"m{i}@nhs.example" for i in range(4)]
        r = start(rt, app, queue, relay, members)
        ids = fanned_out(r, 4, author=members[0])
        dead, mine = ids[:3], ids[3]
        long_ago = utcnow() - timedelta(hours=1)
        with r.db.transaction() as s:
            for claim, rows in ((77, dead), (88, [mine])):
                s.execute(
                    update(GroupDelivery)
                    .where(GroupDelivery.id.in_(rows))
                    .values(status="sending", attempts=1, claim=claim, heartbeat_at=long_ago, updated_at=long_ago)
                )
        sending.live_claims.add(88, 0)  # a chunk this process is still working on
        try:
            sending.beat(r.db)  # the keeper's heartbeat
            recover_groups({}, "sweeper", clock=lambda: 0.0)
            queue()
            with r.db.transaction() as s:
                book = {d.id: (d.status, d.attempts, d.error) for d in s.scalars(select(GroupDelivery))}
                kept = s.get(GroupDelivery, mine).heartbeat_at
        finally:
            sending.live_claims.drop(88)
        assert book[dead[0]][0] == "unknown"  # may have reached the relay: never resent on its own
        assert "not resent" in book[dead[0]][2]
        assert [book[i][:2] for i in dead[1:]] == [("sent", 1), ("sent", 1)]  # the attempt not counted twice
        assert book[mine][0] == "sending"  # alive: not taken back
        assert kept.replace(tzinfo=None) > long_ago.replace(tzinfo=None) + timedelta(minutes=59)
        assert sum(relay.counts().values()) == 2
        assert relay.counts() == {"m1@nhs.example": 1, "m2@nhs.example": 1}
        runner = app.test_cli_runner()
        status = runner.invoke(main, ["groups", "status", "network"])
        assert status.exit_code == 0, status.output
        assert "sent     2" in status.output and "unknown  1" in status.output
        assert "sending  1" in status.output and "groups resend-unknown network" in status.output
        again = runner.invoke(main, ["groups", "resend-unknown", "network"])
        assert again.exit_code == 0, again.output
        assert "1 unknown deliveries of network sent again" in again.output
        queue()
    finally:
        relay.stop()
    assert relay.counts() == {"m0@nhs.example": 1, "m1@nhs.example": 1, "m2@nhs.example": 1}


@BOTH_DIALECTS
def test_pending_rows_whose_queue_messages_were_lost_are_enqueued_again_after_a_lease(app, rt, queue):
    """A fan-out committed, its queue messages lost (a Redis restart): the keeper's sweep
    sees pending rows nobody works on and, once that has lasted a lease (by its clock),
    enqueues them again; they are delivered once, and a later sweep sends nothing more."""
    from mailer.actors.groups import recover_groups

    relay = Relay().start()
    try:
        members = ["a@nhs.example", "b@nhs.example", "c@nhs.example"]
        r = start(rt, app, queue, relay, members)
        fanned_out(r, 3)
        lease = r.settings.delivery.lease_seconds
        quiet: dict = {}
        recover_groups(quiet, "sweeper", clock=lambda: 100.0)
        queue()
        assert relay.counts() == {}  # not quiet for a lease yet: a worker may be about to claim them
        recover_groups(quiet, "sweeper", clock=lambda: 100.0 + lease)
        queue()
        recover_groups(quiet, "sweeper", clock=lambda: 100.0 + 3 * lease)
        queue()
    finally:
        relay.stop()
    assert relay.counts() == {m: 1 for m in members}
    assert quiet == {}
    assert {st for st, _, _ in ledger(r).values()} == {"sent"}


@BOTH_DIALECTS
@pytest.mark.parametrize("fault", ["frozen", "stopping"])
def test_a_frozen_or_stopping_worker_hands_over_nothing_more_and_gives_the_rest_back(
    app, rt, queue, monkeypatch, fault
):
    """Once the relay holds two copies the worker either freezes past half a lease with
    no heartbeat (a sweep may give its rows to another worker) or is asked to stop
    (SIGTERM): it hands over nothing more, and the rest is pending and sent again."""
    import time

    from mailer.actors.groups import dmarc_policies
    from mailer.delivery import sending as delivery_sending
    from mailer.groups import sending

    relay = Relay().start()
    try:
        members = [f"m{i}@nhs.example" for i in range(5)]
        r = start(rt, app, queue, relay, members)  # chunks of 2
        ids = fanned_out(r, 5, author=members[0])
        if fault == "frozen":  # mid-chunk, after the first copy
            lease, base = r.settings.delivery.lease_seconds, time.monotonic()
            frozen = lambda: sum(relay.counts().values()) >= 1  # noqa: E731
            monkeypatch.setattr(delivery_sending, "clock", lambda: base + (lease if frozen() else 0))
            monkeypatch.setattr(sending.live_claims, "beat_ok_at", base)
            result = sending.deliver(r.db, r.transport, r.settings, dmarc_policies(), ids[:4])
            # The frozen chunk's second row goes back; the next chunk, claimed afresh, goes.
            assert sum(relay.counts().values()) == 3 and sorted(result.retry) == sorted(ids[:4])[1:2]
        else:  # between chunks, after two copies
            stop = lambda: sum(relay.counts().values()) >= 2  # noqa: E731
            monkeypatch.setattr(delivery_sending.stopping, "is_set", stop)
            result = sending.deliver(r.db, r.transport, r.settings, dmarc_policies(), ids)
            assert sum(relay.counts().values()) == 2 and sorted(result.retry) == sorted(ids)[2:]
        book = {i: st for i, st in statuses(r).items() if i in result.retry}
        assert set(book.values()) == {"pending"}
        assert all(n == 0 for st, n, _ in ledger(r).values() if st == "pending")  # never attempted
    finally:
        relay.stop()


def statuses(r) -> dict[int, str]:
    with r.db.transaction() as s:
        return dict(s.execute(select(GroupDelivery.id, GroupDelivery.status)).all())
