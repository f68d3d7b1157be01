"""Fan-out, the delivery ledger, and sending through a real SMTP server on loopback."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
from datetime import date

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailer import runtime
from mailer.actors.digest import start_edition
from mailer.boot import boot
from mailer.content.models import Item, Partner, Topic
from mailer.delivery.fanout import counts
from mailer.delivery.models import Delivery
from mailer.digest.editions import build_edition
from mailer.digest.models import Edition
from mailer.mail.transport import SMTPTransport
from subscribers.models import Subscriber
from tests.conftest import BOTH_DIALECTS, TEST_ENV
from tests.mailservers import ROOT

pytestmark = BOTH_DIALECTS  # the dialect matters here: see tests/conftest.py


@pytest.fixture
def edition(rt):
    """An edition with one heart-health item and four subscribers, one with nothing to read."""
    with rt.db.transaction() as s:
        heart, other = Topic(slug="heart", name="Heart health"), Topic(slug="other", name="Other")
        bhf = Partner(slug="bhf", name="British Heart Foundation")
        s.add_all([heart, other, bhf])
        s.flush()
        s.add(
            Item(
                partner_id=bhf.id,
                kind="news",
                title="Screening",
                summary="More screening.",
                link="https://example.org/s",
                status="approved",
                dated=date(2026, 11, 5),
                topics=[heart],
            )
        )
        for email, topics in [
            ("a@example.org", [heart]),
            ("b@example.org", [heart]),
            ("c@example.org", [heart]),
            ("nothing@example.org", [other]),
        ]:
            s.add(Subscriber(email=email, status="confirmed", topics=topics))
        return build_edition(s, "2026-11").id


def _ledger(rt, edition_id):
    with rt.db.transaction() as s:
        return {d.subscriber_id: d for d in s.scalars(select(Delivery).where(Delivery.edition_id == edition_id))}


def test_send_is_idempotent_and_skips_people_with_nothing_to_read(rt, transport, queue, edition):
    runtime.current().queue.send(start_edition, edition)
    queue()
    runtime.current().queue.send(start_edition, edition)  # a second send, or a redelivered message
    queue()
    assert sorted(m.recipient for m in transport.messages) == ["a@example.org", "b@example.org", "c@example.org"]
    with rt.db.transaction() as s:
        assert counts(s, edition) == {"sent": 3, "skipped": 1}
        assert s.get(Edition, edition).status == "sent"
        assert all(d.attempts == 1 for d in s.scalars(select(Delivery).where(Delivery.status == "sent")))


def test_redelivered_batch_message_sends_nothing_twice(rt, transport, queue, edition):
    from mailer.actors.digest import send_deliveries

    runtime.current().queue.send(start_edition, edition)
    queue()
    ids = [d.id for d in _ledger(rt, edition).values()]
    runtime.current().queue.send(send_deliveries, ids)  # as if the broker delivered the batch again
    queue()
    assert len(transport.messages) == 3


def test_unsubscribed_after_fan_out_is_skipped_not_sent(rt, transport, queue, edition):
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:
        fanout.start_edition(s, s.get(Edition, edition), load_plan(s, s.get(Edition, edition)))
        s.scalar(select(Subscriber).where(Subscriber.email == "b@example.org")).status = "unsubscribed"
        ids = fanout.pending_ids(s, edition)
    from mailer.actors.digest import enqueue_batches

    enqueue_batches(ids)
    queue()
    assert sorted(m.recipient for m in transport.messages) == ["a@example.org", "c@example.org"]


def test_suppressed_after_fan_out_is_skipped_with_the_reason(rt, transport, edition):
    # A hard bounce elsewhere puts c@ on the suppression list while still "confirmed"; a
    # paused or unsubscribed person is missing from the batch the same way.
    from mailer.delivery import fanout
    from mailer.delivery.sending import deliver_batch
    from mailer.digest.compose import load_plan
    from subscribers import suppression

    with rt.db.transaction() as s:
        fanout.start_edition(s, s.get(Edition, edition), load_plan(s, s.get(Edition, edition)))
        suppression.suppress(s, "c@example.org", "hard_bounce", "test")
        s.scalar(select(Subscriber).where(Subscriber.email == "b@example.org")).paused_until = date(2099, 1, 1)
        ids = fanout.pending_ids(s, edition)
    result = deliver_batch(rt.db, transport, rt.settings, ids)
    assert (result.sent, result.skipped) == (1, 2)
    assert [m.recipient for m in transport.messages] == ["a@example.org"]
    with rt.db.transaction() as s:
        rows = s.execute(
            select(Subscriber.email, Delivery.status, Delivery.error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_(ids))
        ).all()
        skipped = {r.email: r.error for r in rows if r.status == "skipped"}
        assert skipped == {
            e: "no longer receives digests (unsubscribed, paused, erased or suppressed since the fan-out)"
            for e in ("b@example.org", "c@example.org")
        }


class _Relay:
    """aiosmtpd handler: refuses addresses starting with 'bounce', keeps the rest."""

    def __init__(self):
        self.received = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.rcpt_tos[0], envelope.content))
        return "250 Message accepted"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_relay():
    relay = _Relay()
    controller = Controller(relay, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield relay, controller.port
    controller.stop()


def test_sends_through_real_smtp_and_a_refused_address_fails_without_stalling(rt, settings, queue, edition, smtp_relay):
    relay, port = smtp_relay
    with rt.db.transaction() as s:
        s.scalar(select(Subscriber).where(Subscriber.email == "b@example.org")).email = "bounce@example.org"
    boot(settings, transport=SMTPTransport(f"smtp://127.0.0.1:{port}?timeout=5"))
    runtime.current().queue.send(start_edition, edition)
    queue()
    assert sorted(r for r, _ in relay.received) == ["a@example.org", "c@example.org"]
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in relay.received[0][1]
    ledger = {d.status for d in _ledger(rt, edition).values()}
    assert ledger == {"sent", "failed", "skipped"}
    with rt.db.transaction() as s:
        failed = s.scalar(select(Delivery).where(Delivery.status == "failed"))
        assert "550" in failed.error
        assert s.get(Edition, edition).status == "sent"


def test_relay_down_leaves_deliveries_pending_for_retry(rt, settings, edition):
    from mailer.delivery import fanout
    from mailer.delivery.sending import deliver_batch
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:
        fanout.start_edition(s, s.get(Edition, edition), load_plan(s, s.get(Edition, edition)))
        ids = fanout.pending_ids(s, edition)
    down = SMTPTransport(f"smtp://127.0.0.1:{_free_port()}?timeout=2")
    result = deliver_batch(rt.db, down, settings, ids)
    assert result.sent == 0 and sorted(result.retry) == sorted(ids)
    with rt.db.transaction() as s:
        rows = s.scalars(select(Delivery).where(Delivery.id.in_(ids))).all()
        assert {r.status for r in rows} == {"pending"}
        assert all("connect" in r.error for r in rows)
        assert s.get(Edition, edition).status == "sending"


def test_scheduler_job_builds_and_sends_the_period(rt, transport, queue, edition):
    from mailer.actors.digest import run_period
    from mailer.schedule import jobs

    job = next(j for j in jobs(rt.settings) if j.id == "monthly-digest")
    assert str(job.trigger).startswith("cron[day='1st tue', hour='9', minute='0'")
    runtime.current().queue.send(run_period, "2026-11")
    queue()
    assert len(transport.messages) == 3


def test_paused_and_suppressed_subscribers_get_no_digest(rt, transport, queue, edition):
    from datetime import timedelta

    from subscribers import service, suppression

    with rt.db.transaction() as s:
        paused = s.scalar(select(Subscriber).where(Subscriber.email == "a@example.org"))
        service.pause(s, paused, date.today() + timedelta(days=40), today=date.today())
        suppression.suppress(s, "B@example.org", "complaint", "admin")
    runtime.current().queue.send(start_edition, edition)
    queue()
    assert [m.recipient for m in transport.messages] == ["c@example.org"]


AISHA = "عائشہ.خان@example.org"


@pytest.mark.parametrize("smtputf8", [True, False])
def test_a_non_ascii_address_with_a_name_goes_out_with_smtputf8_or_fails_for_good(
    rt, settings, queue, edition, smtputf8
):
    """Issue 9 finding 4: the digest to such an address crashed the batch in encode_address."""
    from mailer.actors.transactional import send_transactional
    from mailer.mail.transport import PermanentFailure
    from tests.mailservers import Relay

    with rt.db.transaction() as s:
        aisha = s.scalar(select(Subscriber).where(Subscriber.email == "b@example.org"))
        aisha.email, aisha.name = AISHA, "عائشہ خان"
        aisha_id = aisha.id
    relay = Relay(smtputf8=smtputf8).start()
    try:
        boot(settings, transport=SMTPTransport(relay.url))
        runtime.current().queue.send(start_edition, edition)
        queue()
        if smtputf8:
            send_transactional("link", aisha_id)
        else:
            with pytest.raises(PermanentFailure, match="SMTPUTF8"):  # the actor's throws=: no retry
                send_transactional("link", aisha_id)
    finally:
        relay.stop()
    row = _ledger(rt, edition)[aisha_id]
    assert sorted(relay.counts()) == sorted(["a@example.org", "c@example.org"] + [AISHA] * smtputf8)
    if smtputf8:
        assert row.status == "sent" and relay.counts()[AISHA] == 2  # the digest and the link
        digest, link = relay.parsed(AISHA)
        (to,) = digest["To"].addresses
        assert (to.display_name, to.addr_spec) == ("عائشہ خان", AISHA)
        assert link["Subject"].startswith("Your link")
    else:
        assert (row.status, row.attempts) == ("failed", 1)
        assert "does not offer SMTPUTF8" in row.error and AISHA in row.error
        with rt.db.transaction() as s:
            assert s.get(Edition, edition).status == "sent"
            from subscribers.suppression import is_suppressed

            assert not is_suppressed(s, AISHA)  # the relay's shortcoming, not the mailbox's


def test_smtp_credentials_are_never_sent_without_tls(settings):
    """Issue 9 finding 12 (part): SMTP AUTH over a plain connection was allowed."""
    from mailer.settings import ConfigError, Settings

    base = {"MAILER_ENV": "test", "SECRET_KEY": "k", "VAR_DIR": str(settings.var_dir)}
    for url in ("smtp://user:secret@relay.example:587", "smtp://user@relay.example:25?starttls=0"):
        with pytest.raises(ConfigError, match="no TLS"):
            Settings.from_env({**base, "SMTP_URL": url})
        with pytest.raises(ValueError, match="no TLS"):
            SMTPTransport(url)
    for url in (
        "smtps://user:secret@relay.example",
        "smtp://user:secret@relay.example:587?starttls=1",
        "smtp://relay.example:25",
    ):
        assert Settings.from_env({**base, "SMTP_URL": url}).smtp_url == url


def test_digests_carry_reply_to_and_a_feedback_id_per_edition_confirmations_only_auto_submitted(
    rt, settings, transport, queue, edition
):
    """Issue 9 finding 15."""
    from dataclasses import replace
    from email import message_from_bytes, policy

    from mailer.actors.transactional import send_transactional

    boot(replace(settings, reply_to="editors@ertg.example.org"), transport=transport)
    runtime.current().queue.send(start_edition, edition)
    queue()
    with rt.db.transaction() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == "a@example.org"))
    send_transactional("link", sub.id)
    *digests, link = [message_from_bytes(m.data, policy=policy.default) for m in transport.messages]
    assert len(digests) == 3
    for msg in digests:
        assert msg["Reply-To"] == "editors@ertg.example.org"
        assert msg["Feedback-ID"] == "2026-11:digest:ertg.example.org"
        assert msg["Auto-Submitted"] is None  # a digest is a mailing, not an automatic reply
    assert link["Auto-Submitted"] == "auto-generated"
    assert link["Reply-To"] is None and link["Feedback-ID"] is None


def test_fan_out_in_small_ranges_leaves_out_suppressed_paused_and_those_in_the_ledger(rt, edition):
    """The fan-out's INSERT ... SELECT, two subscribers per range: the same ledger as one
    pass, nobody suppressed (a hard bounce keeps the status) or paused, and a second call
    adds only a newcomer."""
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan
    from subscribers.suppression import suppress

    with rt.db.transaction() as s:
        heart = s.scalar(select(Topic).where(Topic.slug == "heart"))
        s.add(Subscriber(email="paused@example.org", status="confirmed", topics=[heart], paused_until=date(2099, 1, 1)))
        s.add(Subscriber(email="Bounced@example.org", status="confirmed", topics=[heart]))
        s.flush()
        suppress(s, "bounced@example.org", "hard_bounce")
        ed = s.get(Edition, edition)
        result = fanout.start_edition(s, ed, load_plan(s, ed), batch=2)
        assert (result.created, result.skipped) == (3, 1)
        s.add(Subscriber(email="late@example.org", status="confirmed", topics=[heart]))
        s.flush()
        again = fanout.start_edition(s, ed, load_plan(s, ed), batch=2)
        assert (again.created, again.skipped) == (1, 0)
        emails = dict(
            s.execute(
                select(Subscriber.email, Delivery.status).join(Delivery, Delivery.subscriber_id == Subscriber.id)
            ).all()
        )
        batches = list(fanout.pending_batches(s, edition, 3))
        assert [len(b) for b in batches] == [3, 1] and sum(batches, []) == sorted(sum(batches, []))
    assert emails == {
        "a@example.org": "pending",
        "b@example.org": "pending",
        "c@example.org": "pending",
        "late@example.org": "pending",
        "nothing@example.org": "skipped",
    }


def _until_a_transaction_waits_for_a_lock(rt, seconds: float = 20.0) -> None:
    """Return once another session of this database waits on a lock (PostgreSQL)."""
    import time

    from sqlalchemy import text

    deadline = time.monotonic() + seconds
    with rt.db.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar()
            conn.rollback()
            if waiting:
                return
    raise AssertionError("the second fan-out never waited for the first")


@pytest.mark.dialects("postgresql")  # the planner's statistics are PostgreSQL's
def test_a_send_gives_the_planner_fresh_statistics_of_the_ledger_and_the_readers(rt, queue, edition):
    """Readers imported a minute before the send: until autovacuum analyses them, the
    planner knows nothing of them, and the batches' reader lookups ran 3-4 times slower
    (bench.recovery). The fan-out job analyses the ledger and the readers' tables itself."""
    from sqlalchemy import text

    from mailer.db import utcnow

    tables = ("deliveries", "subscribers", "subscriber_topics", "subscriber_partners")
    began = utcnow()
    runtime.current().queue.send(start_edition, edition)
    queue()
    with rt.db.engine.connect() as conn:
        analysed = dict(
            conn.execute(
                text("SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname = ANY(:t)"),
                {"t": list(tables)},
            ).all()
        )
    assert set(analysed) == set(tables)
    assert all(at is not None and at >= began for at in analysed.values()), analysed


@pytest.mark.dialects("postgresql")  # real concurrency: two transactions at once
def test_two_sends_at_once_fan_out_once_and_the_second_says_it_is_already_sending(
    rt, transport, queue, edition, caplog, monkeypatch
):
    """Two `edition send` at once: two fan-out jobs of one edition in two threads, the
    first held open (after its rows, before its commit) until the second waits for it. The
    second then finds the edition sending: one line says so, no error, nothing twice."""
    import logging
    import threading

    import mailer.actors.digest as actors

    real_finish, held = actors.finish_if_done, threading.Event()

    def finish_once_the_other_waits(s, edition_id):
        if not held.is_set():
            held.set()
            _until_a_transaction_waits_for_a_lock(rt)
        return real_finish(s, edition_id)

    monkeypatch.setattr(actors, "finish_if_done", finish_once_the_other_waits)
    caplog.set_level(logging.INFO, logger="mailer.actors.digest")
    errors: list[BaseException] = []

    def send():
        try:
            start_edition(edition)
        except BaseException as exc:  # what a worker would log as a traceback
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    said = [r.getMessage() for r in caplog.records if "already sending" in r.getMessage()]
    # How many are still pending when the second looks depends on how fast the embedded
    # worker threads send what the first enqueued: any of 0-3, never a second fan-out.
    assert len(said) == 1 and re.fullmatch(
        r"the 2026-11 edition is already sending; nobody new to add, [0-3] pending enqueued again", said[0]
    )
    assert not [r for r in caplog.records if r.exc_info]
    queue()
    assert sorted(m.recipient for m in transport.messages) == ["a@example.org", "b@example.org", "c@example.org"]
    with rt.db.transaction() as s:
        assert counts(s, edition) == {"sent": 3, "skipped": 1}


def _claimed(rt, edition, token=7):
    """The edition's three deliveries fanned out and claimed under ``token``, by id."""
    from mailer.delivery import fanout
    from mailer.delivery.sending import claim
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:  # the ledger rows, enqueued nowhere: the test writes
        fanout.start_edition(s, s.get(Edition, edition), load_plan(s, s.get(Edition, edition)))
    with rt.db.transaction() as s:
        return sorted(claim(s, [d.id for d in _ledger(rt, edition).values()], token), key=lambda r: r.id)


@pytest.mark.dialects("postgresql")  # the statement prepared through libpq is PostgreSQL's path
def test_each_outcome_is_written_at_once_and_a_lost_prepared_statement_is_made_again(rt, settings, edition):
    """Outcomes go through a statement prepared on the recorder's connection; if the server
    forgot it (psycopg may DEALLOCATE ALL), the next outcome prepares it again."""
    from mailer.delivery.sending import Recorder, _Chunk

    rows = _claimed(rt, edition)
    assert len(rows) == 3
    recorder = Recorder(rt.db)
    chunk = _Chunk(rows, settings, 7, recorder)
    chunk.sent(rows[0])
    chunk.commit(rt.db)
    assert {d.id: d.status for d in _ledger(rt, edition).values()}[rows[0].id] == "sent"
    recorder.conn.exec_driver_sql("DEALLOCATE ALL")
    chunk.failed(rows[1], "550 no such mailbox")
    chunk.commit(rt.db)
    recorder.close()
    chunk.recorder = again = Recorder(rt.db)  # the pooled connection, its statement kept
    chunk.transient(rows[2], "451 try later")
    chunk.commit(rt.db)
    again.close()
    ledger = {d.id: d for d in _ledger(rt, edition).values()}
    assert [(ledger[r.id].status, ledger[r.id].error) for r in rows] == [
        ("sent", None),
        ("failed", "550 no such mailbox"),
        ("pending", "451 try later"),
    ]
    assert ledger[rows[0].id].sent_at is not None and ledger[rows[2].id].next_attempt_at is not None


def test_a_send_adds_its_first_readers_then_the_rest_and_is_not_marked_sent_before_its_ledger_is_whole(
    rt, transport, queue, edition, monkeypatch
):
    """The send job commits its first readers and enqueues them before it adds the rest
    (a range a transaction, each enqueued once committed): while the ledger is not whole,
    nobody marks the edition sent, even with every delivery made so far sent."""
    from mailer.delivery import fanout
    from mailer.delivery.sending import finish_if_done
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:  # what the job's first transaction does, with one reader
        e = s.get(Edition, edition)
        fanout.start_edition(s, e, load_plan(s, e), first=1)
    first = _ledger(rt, edition)
    assert [d.status for d in first.values()] == ["pending"]
    with rt.db.transaction() as s:
        assert s.get(Edition, edition).fanout_after == next(iter(first))
        s.execute(Delivery.__table__.update().values(status="sent"))
        assert not finish_if_done(s, edition)
        assert s.get(Edition, edition).status == "sending"
    with rt.db.transaction() as s:  # the next range: the other three readers
        assert fanout.extend(s, edition, load_plan(s, s.get(Edition, edition)), batch=3)
    with rt.db.transaction() as s:  # nobody after them: the ledger is whole
        assert not fanout.extend(s, edition, load_plan(s, s.get(Edition, edition)), batch=3)
        assert s.get(Edition, edition).fanout_after is None
    with rt.db.transaction() as s:
        assert counts(s, edition) == {"sent": 1, "pending": 2, "skipped": 1}

    monkeypatch.setattr(fanout, "FANOUT_FIRST", 1)  # the job, from a fresh edition
    with rt.db.transaction() as s:
        s.execute(Delivery.__table__.delete())
        s.execute(Edition.__table__.update().values(status="draft", fanout_after=None))
    runtime.current().queue.send(start_edition, edition)
    queue()
    assert sorted(m.recipient for m in transport.messages) == ["a@example.org", "b@example.org", "c@example.org"]
    with rt.db.transaction() as s:
        assert counts(s, edition) == {"sent": 3, "skipped": 1}
        e = s.get(Edition, edition)
        assert (e.status, e.fanout_after, e.fanout_beat_at) == ("sent", None, None)


def test_a_fan_out_that_stopped_half_way_is_started_again_by_the_sweep(rt, transport, queue, edition):
    """The worker making the ledger died after its first range: the copies of that range
    go, the edition stays sending, and once the fan-out has been silent for a lease a
    sweep runs the send job again, which adds the rest. Everyone gets one copy."""
    from datetime import timedelta

    from mailer.actors.digest import enqueue_pending, recover
    from mailer.db import utcnow
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:
        e = s.get(Edition, edition)
        fanout.start_edition(s, e, load_plan(s, e), first=1)
    enqueue_pending(edition)
    queue()
    assert [m.recipient for m in transport.messages] == ["a@example.org"]
    recover({}, "sweep-1")  # the fan-out is not silent yet: nothing is started
    queue()
    assert len(transport.messages) == 1
    with rt.db.transaction() as s:
        assert s.get(Edition, edition).status == "sending"  # not sent: readers are missing
        lease = rt.settings.delivery.lease_seconds
        s.get(Edition, edition).fanout_beat_at = utcnow() - timedelta(seconds=lease + 1)
    recover({}, "sweep-2")
    queue()
    assert sorted(m.recipient for m in transport.messages) == ["a@example.org", "b@example.org", "c@example.org"]
    with rt.db.transaction() as s:
        assert counts(s, edition) == {"sent": 3, "skipped": 1}
        assert s.get(Edition, edition).status == "sent"


def test_outcomes_committed_while_a_write_is_under_way_are_written_together_by_the_next(rt, settings, edition):
    """Three sending threads commit while the process's outcome writes are held: none
    returns before its outcome is in the ledger, and then one statement writes all three,
    a refusal's text (quotes, a backslash, a NUL) and a retry's time included."""
    from mailer.delivery.sending import Recorder, _Chunk, group_commit

    rows = _claimed(rt, edition)
    assert len(rows) == 3
    chunks = [_Chunk([row], settings, 7, Recorder(rt.db)) for row in rows]
    chunks[0].sent(rows[0])
    chunks[1].failed(rows[1], "550 'no' \"such\" \\ mailbox\x00")
    chunks[2].transient(rows[2], "451 try later")
    writes, written = group_commit.writes, group_commit.outcomes
    errors: queue.Queue = queue.Queue()

    def commit(chunk):
        try:
            chunk.commit(rt.db)
        except BaseException as exc:  # the test thread reports it
            errors.put(exc)
        finally:
            chunk.recorder.close()

    threads = [threading.Thread(target=commit, args=(c,)) for c in chunks]
    with group_commit.exclusive():  # a write under way
        for t in threads:
            t.start()
        for _ in range(500):  # until all three wait their turn (a second at most)
            if len(group_commit._queue) == 3:
                break
            threading.Event().wait(0.002)
        assert len(group_commit._queue) == 3 and all(t.is_alive() for t in threads)
        claimed = {r.id for r in rows}
        assert {d.status for d in _ledger(rt, edition).values() if d.id in claimed} == {"sending"}
    for t in threads:
        t.join(10)
    assert errors.empty(), errors.get()
    assert (group_commit.writes - writes, group_commit.outcomes - written) == (1, 3)
    ledger = {d.id: d for d in _ledger(rt, edition).values()}
    assert [(ledger[r.id].status, ledger[r.id].error) for r in rows] == [
        ("sent", None),
        ("failed", "550 'no' \"such\" \\ mailbox"),
        ("pending", "451 try later"),
    ]
    assert ledger[rows[0].id].sent_at is not None and ledger[rows[1].id].sent_at is None
    assert ledger[rows[2].id].next_attempt_at is not None and ledger[rows[2].id].attempts == 1


@pytest.mark.dialects("postgresql")  # a connection broken under one writer: PostgreSQL's
def test_a_failed_group_write_fails_its_writer_only_and_the_others_outcomes_go_with_the_next(rt, settings, edition):
    """The writer whose connection broke learns of it (its outcome is kept for the keeper);
    the outcome it carried for another thread goes back to the queue, and the next write
    takes it with its own."""
    from mailer.delivery import sending
    from mailer.delivery.sending import DatabaseLost, Recorder, _Chunk, _Ticket, group_commit

    rows = _claimed(rt, edition)
    broken, waiting, healthy = (_Chunk([row], settings, 7, Recorder(rt.db)) for row in rows)
    for chunk, row in zip((broken, waiting, healthy), rows, strict=True):
        chunk.sent(row)
    broken.recorder._open()
    broken.recorder.conn.connection.dbapi_connection.close()  # the server went away under it
    other = _Ticket(list(waiting.unwritten.values()))  # another thread's, queued meanwhile
    group_commit._queue.append(other)
    try:
        with pytest.raises(DatabaseLost):
            broken.commit(rt.db)
        assert group_commit._queue == [other] and not other.written
        assert [o["b_id"] for o in sending.backlog] == [rows[0].id]  # kept by its own thread
        healthy.commit(rt.db)
        healthy.recorder.close()
        assert other.written and group_commit._queue == []
    finally:
        sending.backlog.clear()
        group_commit._queue.clear()
    ledger = {d.id: d.status for d in _ledger(rt, edition).values()}
    assert [ledger[r.id] for r in rows] == ["sending", "sent", "sent"]


def _in_ledger_now(rt, edition, rows):
    ids = {r.id for r in rows}
    return [d for d in _ledger(rt, edition).values() if d.id in ids]


def test_the_heartbeat_waits_for_the_outcome_write_under_way(rt, settings, edition):
    """The keeper's heartbeat, a statement over the process's claimed rows, never runs
    beside an outcome write (the two could lock rows in opposite orders: a deadlock)."""
    from mailer.delivery.sending import beat, group_commit, live_claims

    rows = _claimed(rt, edition, token=11)
    with rt.db.transaction() as s:  # an old heartbeat, to see the new one
        s.execute(Delivery.__table__.update().values(heartbeat_at=Delivery.created_at))
    live_claims.add(11, rows[0].edition_id)
    try:
        beating = threading.Thread(target=beat, args=(rt.db,))
        with group_commit.exclusive():
            beating.start()
            beating.join(0.3)
            assert beating.is_alive()  # waiting for the write to end
            assert all(d.heartbeat_at == d.created_at for d in _in_ledger_now(rt, edition, rows))
        beating.join(10)
    finally:
        live_claims.drop(11)
    assert all(d.heartbeat_at > d.created_at for d in _in_ledger_now(rt, edition, rows))


# An outcome written in a process whose threads are greenlets (gevent, as `mailer worker`
# runs them); a greenlet prints "tick" every 10 ms while the write waits.
RECORD_UNDER_GREENLETS = """
from gevent import monkey

monkey.patch_all()
import sys
from collections import namedtuple

import gevent

from mailer.db import Database
from mailer.delivery.sending import Recorder, _Chunk
from mailer.settings import Settings

settings = Settings.from_env()
db = Database(settings.database_url)
row = namedtuple("Row", "id subscriber_id edition_id attempts")(*map(int, sys.argv[1:5]))
writing = False


def tick():
    while True:
        gevent.sleep(0.01)
        if writing:
            print("tick", flush=True)


gevent.spawn(tick)
chunk = _Chunk([row], settings, int(sys.argv[5]), Recorder(db))
chunk.sent(row)
writing = True
chunk.commit(db)
writing = False
chunk.recorder.close()
print("written", flush=True)
"""


@pytest.mark.dialects("postgresql")  # the statement prepared through libpq is PostgreSQL's path
def test_under_greenlets_an_outcome_waiting_for_the_database_stalls_nobody_else(rt, settings, edition):
    """While an outcome's write waits (here on a row lock another transaction holds),
    the process's other greenlets run; once the lock is gone the outcome is written."""
    from mailer.delivery import fanout
    from mailer.delivery.sending import claim
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:
        fanout.start_edition(s, s.get(Edition, edition), load_plan(s, s.get(Edition, edition)))
    with rt.db.transaction() as s:
        row = min(claim(s, [d.id for d in _ledger(rt, edition).values()], 7), key=lambda r: r.id)
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": settings.database_url, "VAR_DIR": str(settings.var_dir)}
    lines: queue.Queue[str] = queue.Queue()
    with rt.db.engine.connect() as locker:
        locker.execute(select(Delivery.id).where(Delivery.id == row.id).with_for_update())
        proc = subprocess.Popen(
            [sys.executable, "-c", RECORD_UNDER_GREENLETS, *map(str, row), "7"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
        try:
            # Twenty ticks while the write waits for the lock: the process was not stalled.
            assert [lines.get(timeout=30) for _ in range(20)] == ["tick"] * 20
            assert {d.id: d.status for d in _ledger(rt, edition).values()}[row.id] == "sending"
            locker.rollback()  # the lock goes; the write goes through
            while lines.get(timeout=30) != "written":  # ticks until then; queue.Empty if never
                pass
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert {d.id: d.status for d in _ledger(rt, edition).values()}[row.id] == "sent"
