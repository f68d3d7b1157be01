"""The delivery engine through a real SMTP relay on loopback (aiosmtpd), in embedded mode:
refused addresses, the circuit breaker, pause / resume / cancel, status, headers
(VERP, DKIM, List-*), unknown-fate deliveries, and rate limits shared through Redis."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from mailer import runtime
from mailer.boot import boot
from mailer.delivery.models import Delivery
from mailer.digest.models import Edition
from mailer.mail.transport import SMTPTransport
from mailer.settings.delivery import DeliveryConfig
from tests.conftest import BOTH_DIALECTS, REDIS_URL, need
from tests.factories import bench_edition
from tests.mailservers import ROOT, Relay, free_port

pytestmark = BOTH_DIALECTS  # the dialect matters here: see tests/conftest.py

PERIOD = date.today().strftime("%Y-%m")


@pytest.fixture
def readers(rt):
    """The 40-item benchmark catalogue and 3 demo + 20 readers; a draft edition."""
    bench_edition(rt, 20, seed=2, period=PERIOD)


def use_relay(rt, smtp_url: str, **knobs):
    """Reconfigure this process to send through ``smtp_url`` with delivery ``knobs``."""
    env = {"SEND_BATCH_SIZE": "10", "SEND_CHUNK_SIZE": "5", "SEND_RETRY_SECONDS": "0.05"}
    env.update({k: str(v) for k, v in knobs.items()})
    settings = replace(rt.settings, smtp_url=smtp_url, delivery=DeliveryConfig.from_env(env))
    return boot(settings, transport=SMTPTransport(smtp_url))


def cli(app, *args, **kw):
    from mailer.cli import main

    result = app.test_cli_runner().invoke(main, list(args), **kw)
    return result


def ledger(r) -> dict[str, tuple[str, int, str | None]]:
    from subscribers.models import Subscriber

    with r.db.transaction() as s:
        rows = s.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.error).join(
                Subscriber, Subscriber.id == Delivery.subscriber_id
            )
        ).all()
    return {e.lower(): (st, n, err) for e, st, n, err in rows}


def test_relay_refusing_some_addresses_fails_those_delivers_the_rest_and_suppresses(rt, app, readers, queue):
    relay = Relay(refuse=("reader3@", "reader7@")).start()
    try:
        r = use_relay(rt, relay.url)
        result = cli(app, "edition", "send", PERIOD, "--wait")
        assert result.exit_code == 0, result.output
    finally:
        relay.stop()
    book = ledger(r)
    refused = {e for e in book if e.startswith(("reader3@", "reader7@"))}
    assert len(refused) == 2
    for e in refused:
        status, attempts, error = book[e]
        assert (status, attempts) == ("failed", 1) and "550" in error  # at once, no retries
    got = relay.counts()
    assert set(got) == set(book) - refused and max(got.values()) == 1
    status = cli(app, "edition", "status", PERIOD)
    assert f"Edition {PERIOD}: sent" in status.output and "failed 2" in status.output

    # 5.1.1 "mailbox unavailable" counts as a hard bounce: the next edition skips them.
    from subscribers.suppression import is_suppressed

    with r.db.transaction() as s:
        assert {e for e in book if is_suppressed(s, e)} == refused


def test_breaker_pauses_a_failing_send_and_tells_the_operator_then_resume_completes(rt, app, readers, queue):
    port = free_port()  # nothing listens: every connection is refused
    r = use_relay(rt, f"smtp://127.0.0.1:{port}?timeout=2", SEND_BREAKER_FAILURES=3)
    result = cli(app, "edition", "send", PERIOD, "--wait", "--timeout", "60")
    assert result.exit_code == 0, result.output
    queue()
    status = cli(app, "edition", "status", PERIOD).output
    assert f"Edition {PERIOD}: paused" in status
    # 3 or more: two threads may add their failure before either pauses the edition.
    streak = re.search(r"breaker: (\d+) consecutive failures", status)
    assert streak and int(streak.group(1)) >= 3 and "cannot connect" in status
    book = ledger(r)
    assert {st for st, _, _ in book.values()} == {"pending"}  # nothing lost, nothing failed
    assert cli(app, "edition", "send", PERIOD).exit_code == 1  # refuses, points to resume

    relay = Relay(port).start()
    try:
        result = cli(app, "edition", "resume", PERIOD)
        assert result.exit_code == 0 and "Resumed" in result.output
        queue()
    finally:
        relay.stop()
    book = ledger(r)
    assert {st for st, _, _ in book.values()} == {"sent"}
    assert relay.counts() == Counter({e: 1 for e in book})


def test_a_relay_refusing_every_reader_fails_no_more_than_the_breaker_allows(rt, app, readers):
    """A relay that answers 550 to everyone (a misconfiguration on its side) must not fail,
    and suppress, a whole chunk of readers: the chunk stops at the breaker's count, the
    edition pauses, and the rest of the chunk is pending again, its attempt not counted."""
    from mailer.delivery import fanout
    from mailer.delivery.sending import deliver_batch
    from mailer.digest.compose import load_plan

    relay = Relay(refuse=("@",)).start()
    try:
        r = use_relay(rt, f"smtp://127.0.0.1:{relay.port}", SEND_CHUNK_SIZE=100, SEND_BREAKER_FAILURES=4)
        with r.db.transaction() as s:
            ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
            fanout.start_edition(s, ed, load_plan(s, ed))
            ids = fanout.pending_ids(s, ed.id)
        assert len(ids) > 10
        result = deliver_batch(r.db, r.transport, r.settings, ids)
    finally:
        relay.stop()
    assert result.paused and result.failed == 4 and result.sent == 0
    book = ledger(r)
    assert sorted(st for st, _, _ in book.values()) == ["failed"] * 4 + ["pending"] * (len(ids) - 4)
    assert all(n == 0 for st, n, _ in book.values() if st == "pending")  # never attempted
    assert f"Edition {PERIOD}: paused" in cli(app, "edition", "status", PERIOD).output


def test_status_says_the_relay_is_refusing_instead_of_an_eta_and_clears_when_it_is_back(rt, app, readers):
    from sqlalchemy import update

    from mailer.delivery import fanout
    from mailer.delivery.sending import deliver_batch
    from mailer.digest.compose import load_plan

    port = free_port()  # nothing listens yet: the connection is refused
    r = use_relay(rt, f"smtp://127.0.0.1:{port}?timeout=2", SEND_RETRY_SECONDS=600, SEND_BREAKER_FAILURES=100)
    with r.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed))
        ids = fanout.pending_ids(s, ed.id)
    result = deliver_batch(r.db, r.transport, r.settings, ids)
    assert result.sent == 0 and sorted(result.retry) == sorted(ids)
    status = cli(app, "edition", "status", PERIOD).output
    assert "relay refusing since " in status and f"{len(ids)} waiting to retry" in status, status
    assert "ETA" not in status
    assert "the relay's last answer: " in status and f"127.0.0.1:{port}" in status

    relay = Relay(port).start()
    try:
        with r.db.transaction() as s:  # the backoff has run out
            s.execute(update(Delivery).where(Delivery.id.in_(ids)).values(next_attempt_at=None))
        result = deliver_batch(r.db, r.transport, r.settings, ids)
    finally:
        relay.stop()
    assert result.sent == len(ids)
    status = cli(app, "edition", "status", PERIOD).output
    assert "relay refusing" not in status and f"Edition {PERIOD}: sent" in status


def test_a_worker_frozen_past_half_a_lease_gives_its_chunk_back_instead_of_racing_a_sweep(rt, readers, monkeypatch):
    """A process that stalls (a paused machine, SIGSTOP) while its claim's heartbeat goes
    unrefreshed may wake after a sweep gave its deliveries to another worker: it hands
    over nothing more from that chunk, and the rest is pending again, attempt uncounted."""
    from mailer.delivery import fanout, sending
    from mailer.digest.compose import load_plan

    relay = Relay().start()
    try:
        r = use_relay(rt, relay.url, SEND_CHUNK_SIZE=100)
        with r.db.transaction() as s:
            ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
            fanout.start_edition(s, ed, load_plan(s, ed))
            ids = fanout.pending_ids(s, ed.id)
        lease, base = r.settings.delivery.lease_seconds, time.monotonic()
        # The process freezes once the relay holds two copies: its clock jumps a lease on.
        monkeypatch.setattr(sending, "clock", lambda: base + (lease if len(relay.messages) >= 2 else 0))
        monkeypatch.setattr(sending.live_claims, "beat_ok_at", base)
        result = sending.deliver_batch(r.db, r.transport, r.settings, ids)
    finally:
        relay.stop()
    assert len(relay.messages) == 2 and result.sent == 2
    book = ledger(r)
    states = Counter(st for st, _, _ in book.values())
    assert states == {"sent": 2, "pending": len(ids) - 2}
    assert all(n == 0 for st, n, _ in book.values() if st == "pending")  # never attempted
    assert sorted(result.retry) == sorted(ids)[2:]  # handed over in id order; the rest goes again


def test_status_says_which_deliveries_wait_for_a_silent_workers_claim_and_until_when(rt, app, readers):
    """A worker killed mid-chunk leaves its claim `sending` until a sweep takes it back,
    a lease after its last heartbeat: `edition status` says so meanwhile, not only an ETA."""
    from datetime import timedelta

    from sqlalchemy import update

    from mailer.db import utcnow
    from mailer.delivery import fanout
    from mailer.delivery.sending import claim
    from mailer.digest.compose import load_plan

    lease = rt.settings.delivery.lease_seconds
    with rt.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed))
        ids = fanout.pending_ids(s, ed.id)
        claim(s, ids[:5], token=11)  # a live worker's chunk
        claim(s, ids[5:8], token=12)  # a dead one's: its last beat two thirds of a lease ago
        last_beat = utcnow() - timedelta(seconds=lease * 2 / 3)
        s.execute(update(Delivery).where(Delivery.claim == 12).values(heartbeat_at=last_beat))
    status = cli(app, "edition", "status", PERIOD).output
    back = last_beat + timedelta(seconds=lease)
    assert f"3 held by a worker silent since {last_beat:%H:%M:%S} (stopped or dead); " in status, status
    assert f"a sweep takes them back from {back:%H:%M:%S}" in status
    assert "ETA" in status  # the others still send

    with rt.db.transaction() as s:  # its worker beats again: nothing to say
        s.execute(update(Delivery).where(Delivery.claim == 12).values(heartbeat_at=utcnow()))
    assert "silent" not in cli(app, "edition", "status", PERIOD).output


def test_status_says_readers_are_still_being_added_while_the_fan_out_runs(rt, app, readers):
    """While a send's fan-out adds readers a range at a time, `edition status` says the
    total is the ledger's so far, and gives no ETA from it."""
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:  # the send job's first transaction
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed), first=5)
        eid = ed.id
    status = cli(app, "edition", "status", PERIOD).output
    assert "still adding readers: the ledger holds the first 5 so far" in status, status
    assert "ETA -" in status
    with rt.db.transaction() as s:  # the rest, in one range
        while fanout.extend(s, eid, load_plan(s, s.get(Edition, eid))):
            pass
    status = cli(app, "edition", "status", PERIOD).output
    assert "still adding" not in status and "of 23" in status, status


def test_pause_holds_deliveries_resume_sends_them_cancel_stops_the_rest(rt, app, readers, queue):
    from mailer.actors.digest import enqueue_batches
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan

    relay = Relay().start()
    try:
        r = use_relay(rt, relay.url)
        with r.db.transaction() as s:
            ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
            fanout.start_edition(s, ed, load_plan(s, ed))
            ids = fanout.pending_ids(s, ed.id)
        assert cli(app, "edition", "pause", PERIOD).exit_code == 0
        enqueue_batches(ids)  # the queue still holds the batches ...
        queue()
        assert relay.messages == []  # ... but a paused edition claims nothing
        assert "paused" in cli(app, "edition", "status", PERIOD).output
        assert cli(app, "edition", "resume", PERIOD).exit_code == 0
        queue()
        assert len(relay.messages) == len(ids)
        assert cli(app, "edition", "pause", PERIOD).exit_code == 1  # sent: nothing to pause

        # A second month: cancelled before anything leaves.
        with r.db.transaction() as s:
            from mailer.content.models import Item, Partner, Topic

            partner = s.scalars(select(Partner)).first()
            s.add(
                Item(
                    partner_id=partner.id,
                    kind="news",
                    title="Next",
                    summary="Next.",
                    link="https://example.org/n",
                    status="approved",
                    dated=date(2099, 1, 3),
                    topics=list(s.scalars(select(Topic))),
                )
            )
            from mailer.digest.editions import build_edition

            ed2 = build_edition(s, "2099-01")
            s.flush()
            fanout.start_edition(s, ed2, load_plan(s, ed2))
            ids2 = fanout.pending_ids(s, ed2.id)
        result = cli(app, "edition", "cancel", "2099-01", "--yes")
        assert result.exit_code == 0 and f"{len(ids2)} deliveries will not be sent" in result.output
        enqueue_batches(ids2)
        queue()
        assert len(relay.messages) == len(ids)
        assert "cancelled" in cli(app, "edition", "status", "2099-01").output
        assert cli(app, "edition", "resume", "2099-01").exit_code == 1
    finally:
        relay.stop()


def test_a_delivery_left_sending_by_a_dead_worker_becomes_unknown_and_only_the_operator_resends(
    rt, app, readers, queue, transport
):
    from mailer.delivery import control, fanout
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed))
        ids = fanout.pending_ids(s, ed.id)
        # A worker claimed two deliveries long ago and died.
        from datetime import timedelta

        from sqlalchemy import update

        from mailer.db import utcnow

        s.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[:2]))
            .values(status="sending", attempts=1, updated_at=utcnow() - timedelta(hours=1))
        )
        assert control.reap_stale(s, ed.id, lease_seconds=600) == 2
    from mailer.actors.digest import enqueue_batches

    enqueue_batches(ids)
    queue()
    assert len(transport.messages) == len(ids) - 2  # not silently resent
    status = cli(app, "edition", "status", PERIOD).output
    assert "unknown 2" in status and "resend-unknown" in status
    with rt.db.transaction() as s:
        assert s.scalar(select(Edition.status).where(Edition.period == PERIOD)) == "sent"
    assert cli(app, "edition", "resend-unknown", PERIOD).exit_code == 0
    queue()
    assert len(transport.messages) == len(ids)


def test_resume_and_resend_unknown_change_the_ledger_in_one_statement_and_enqueue_a_batch_at_a_time(
    rt, app, readers, queue, transport, monkeypatch
):
    """Like the fan-out, neither builds a list of every id: the rows change in one UPDATE,
    and the pending are read back from the ledger and enqueued a batch at a time."""
    from sqlalchemy import update

    from mailer.actors.digest import send_deliveries
    from mailer.delivery import control, fanout
    from mailer.digest.compose import load_plan

    r = boot(replace(rt.settings, delivery=DeliveryConfig.from_env({"SEND_BATCH_SIZE": "4"})), transport=transport)
    batches: list[list[int]] = []
    real_send = r.queue.send

    def send(fn, *args, **kw):
        if fn is send_deliveries or getattr(fn, "__name__", "") == "send_deliveries":
            batches.append(list(args[0]))
        return real_send(fn, *args, **kw)

    monkeypatch.setattr(r.queue, "send", send)
    with r.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed))
        ids = fanout.pending_ids(s, ed.id)
        control.pause(s, ed)
    assert len(ids) > 8
    result = cli(app, "edition", "resume", PERIOD)
    assert result.exit_code == 0 and f"{len(ids)} deliveries queued" in result.output
    assert max(map(len, batches)) <= 4 and sorted(i for b in batches for i in b) == ids
    queue()
    assert sorted(m.recipient for m in transport.messages) == sorted(set(m.recipient for m in transport.messages))
    assert len(transport.messages) == len(ids)

    with r.db.transaction() as s:  # a worker died holding these (as a sweep leaves them)
        s.execute(update(Delivery).where(Delivery.id.in_(ids[:6])).values(status="unknown"))
    batches.clear()
    result = cli(app, "edition", "resend-unknown", PERIOD)
    assert result.exit_code == 0 and "Queued 6 deliveries of unknown fate again" in result.output
    assert [len(b) for b in batches] == [4, 2] and sorted(i for b in batches for i in b) == ids[:6]
    queue()
    assert len(transport.messages) == len(ids) + 6


def test_every_digest_carries_list_headers_a_verp_return_path_and_a_valid_dkim_signature(
    rt, app, readers, queue, dkim_key
):
    import dkim

    from mailer.mail.verp import ReturnPaths

    key, public = dkim_key
    relay = Relay(pipelining=True).start()  # also exercises the pipelined SMTP transaction
    try:
        r = use_relay(rt, relay.url, DKIM_SELECTOR="mail2026", DKIM_PRIVATE_KEY_FILE=key)
        assert cli(app, "edition", "send", PERIOD, "--wait").exit_code == 0
    finally:
        relay.stop()
    paths = ReturnPaths(r.settings.secret_key, r.settings.delivery, r.settings.sender_domain)
    with r.db.transaction() as s:
        by_id = {d.id: d for d in s.scalars(select(Delivery))}
    seen_ids = set()
    for _rcpt, return_path, data in relay.messages:
        delivery_id = paths.delivery_id(return_path)
        assert delivery_id in by_id and by_id[delivery_id].status == "sent"
        seen_ids.add(delivery_id)
        assert dkim.verify(data, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + public)
    assert seen_ids == set(by_id)
    rcpt, return_path, data = relay.messages[0]
    msg = relay.parsed(rcpt)[0]
    signed = {h.strip().lower() for h in msg["DKIM-Signature"].split("h=")[1].split(";")[0].split(":")}
    assert {"list-id", "list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= signed
    assert msg["Message-ID"].startswith("<") and msg["Date"]
    assert msg["List-Id"].endswith("<digest.ertg.example.org>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = [u.strip(" <>") for u in msg["List-Unsubscribe"].split(",")]
    assert https.startswith("https://digest.example.org/u/") and mailto.startswith("mailto:")
    # A forged or altered return path maps to nothing.
    assert paths.delivery_id(return_path.replace("-", "-0", 1)) is None
    assert paths.delivery_id("bounces+1-00000000@ertg.example.org") is None


def test_rate_limits_are_shared_by_workers_through_redis():
    from mailer.counters import RedisCounters
    from mailer.delivery.limits import RateLimiter

    url = need(REDIS_URL, "TEST_REDIS_URL")
    prefix = f"test:rate:{time.time_ns()}"
    config = DeliveryConfig.from_env({"SEND_RATE": "25", "SEND_RATE_DOMAINS": "nhs.example=10"})
    stamps: list[tuple[str, float]] = []
    lock = threading.Lock()

    class Charged(RateLimiter):
        """Notes the window each permit was charged to: the limiter's last clock reading
        before a permit is granted is that window's (a stamp taken after acquire() returns
        could fall in the next second on a busy machine and count a message twice over)."""

        def __init__(self, *args, **kwargs):
            self.reading = 0.0
            super().__init__(*args, clock=self._read, **kwargs)

        def _read(self) -> float:
            self.reading = time.time()
            return self.reading

        def _permit(self, name, limit):
            super()._permit(name, limit)
            with lock:
                stamps.append((name, self.reading))

    def worker(domains):  # each "worker" has its own Redis connection, as processes would
        limiter = Charged(RedisCounters.from_url(url), config.rate, config.rate_for, prefix=prefix)
        for d in domains:
            limiter.acquire(d)

    start = time.time()
    jobs = [threading.Thread(target=worker, args=(["nhs.example"] * 12 + ["other.example"] * 8,)) for _ in range(2)]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    assert len([n for n, _ in stamps if n == "all"]) == 40
    per_window = Counter(int(t) for n, t in stamps if n == "all")
    nhs_per_window = Counter(int(t) for n, t in stamps if n == "domain:nhs.example")
    assert sum(nhs_per_window.values()) == 24
    assert max(per_window.values()) <= 25  # overall, both workers together
    assert max(nhs_per_window.values()) <= 10  # the shared NHS domain
    assert time.time() - start >= 1.0  # 24 NHS messages at 10/s cannot go in one window


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_smtp_url_with_tls_and_login_reaches_an_authenticating_relay(tls_cert, mode):
    """SMTP_URL's smtps:// and ?starttls=1 encrypt, user:pass logs in, ?cafile= trusts
    the relay's private CA; a wrong password is a transient failure, never a send."""
    from mailer.mail.transport import TransientFailure

    cert, key = tls_cert
    relay = Relay(tls=mode, certs=(cert, key), login=("digest", "s3cret pass")).start()
    scheme, query = ("smtps", "") if mode == "smtps" else ("smtp", "&starttls=1")
    try:
        good = SMTPTransport(f"{scheme}://digest:s3cret%20pass@127.0.0.1:{relay.port}?cafile={cert}{query}&timeout=5")
        good.send("bounces+1-x@ertg.example.org", "nurse@nhs.example", b"Subject: hi\r\n\r\nhello\r\n")
        good.close()
        bad = SMTPTransport(f"{scheme}://digest:wrong@127.0.0.1:{relay.port}?cafile={cert}{query}&timeout=1")
        with pytest.raises(TransientFailure, match="535"):  # refused, not timed out
            bad.send("bounces+1-x@ertg.example.org", "nurse@nhs.example", b"Subject: hi\r\n\r\nx\r\n")
        untrusted = SMTPTransport(f"{scheme}://digest:s3cret%20pass@127.0.0.1:{relay.port}?timeout=5{query}")
        with pytest.raises(TransientFailure):  # no CA given: the self-signed relay is refused
            untrusted.send("bounces+1-x@ertg.example.org", "nurse@nhs.example", b"x\r\n")
    finally:
        relay.stop()
    assert relay.counts() == Counter({"nurse@nhs.example": 1})


# One message through SMTP_URL (argv[1]) from a process patched as `mailer worker`'s are.
SEND_UNDER_GREENLETS = """
from gevent import monkey

monkey.patch_all()
import sys

from mailer.mail.transport import SMTPTransport

transport = SMTPTransport(sys.argv[1])
transport.send("bounces+1-x@ertg.example.org", "nurse@nhs.example", b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
transport.close()
"""


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_under_greenlets_a_tls_relay_is_reached_as_with_threads(tls_cert, mode):
    """A worker process's senders are greenlets (gevent patches ssl too): the same
    encrypted, authenticated hand-over, here from a process patched as `mailer worker`'s."""
    cert, key = tls_cert
    relay = Relay(tls=mode, certs=(cert, key), login=("digest", "s3cret pass")).start()
    scheme, query = ("smtps", "") if mode == "smtps" else ("smtp", "&starttls=1")
    url = f"{scheme}://digest:s3cret%20pass@127.0.0.1:{relay.port}?cafile={cert}{query}&timeout=5"
    try:
        done = subprocess.run(
            [sys.executable, "-c", SEND_UNDER_GREENLETS, url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        relay.stop()
    assert done.returncode == 0, done.stderr
    assert relay.counts() == Counter({"nurse@nhs.example": 1})


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_only_one_watchdog_chain_holds_an_edition(backend):
    from mailer.counters import MemoryCounters, counters_from_url

    now = [100.0]
    if backend == "redis":  # Redis keeps its own time: a short hold, waited out by polling
        counters, ttl = counters_from_url(need(REDIS_URL, "TEST_REDIS_URL")), 0.05
    else:
        counters, ttl = MemoryCounters(clock=lambda: now[0]), 0.3
    key = f"mailer:watch:test-{time.time_ns()}"
    assert counters.hold(key, "chain-a", ttl)
    assert counters.hold(key, "chain-a", ttl)  # the holder carries on
    assert not counters.hold(key, "chain-b", ttl)  # a second chain stops at once
    now[0] += ttl + 0.01  # the first chain died and its hold ran out: the next takes over
    deadline = time.monotonic() + 5
    while not counters.hold(key, "chain-b", 30):
        assert backend == "redis" and time.monotonic() < deadline, "the dead chain's hold never ran out"
        time.sleep(0.01)
    counters.release(key, "chain-a")  # not the holder: no effect
    assert not counters.hold(key, "chain-c", ttl)
    counters.release(key, "chain-b")
    assert counters.hold(key, "chain-c", ttl)


def test_rate_limiter_waits_for_the_next_window_rather_than_exceed_a_rate():
    """In embedded mode the limits are in-process: at 3/s overall and 2/s for one domain,
    a burst of 7 spreads over windows, each within both rates (on a moved clock)."""
    from mailer.counters import MemoryCounters
    from mailer.delivery.limits import RateLimiter

    now, slept = [1000.5], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(
        MemoryCounters(), 3, lambda d: 2 if d == "nhs.example" else None, clock=lambda: now[0], sleep=sleep
    )
    stamps = []
    for domain in ["nhs.example"] * 5 + ["other.example"] * 2:
        limiter.acquire(domain)
        stamps.append((domain, int(now[0])))
    per_window = Counter(w for _, w in stamps)
    nhs = Counter(w for d, w in stamps if d == "nhs.example")
    assert max(per_window.values()) <= 3 and max(nhs.values()) <= 2
    assert len(nhs) == 3 and slept  # five NHS messages at 2/s need three windows


def test_restart_in_embedded_mode_requeues_pending_and_waits_out_backoffs(rt, app, readers, queue, transport):
    """What an embedded process does on start-up: the in-process queue died with the old
    process, the ledger did not. Due deliveries go now; one backing off goes when due."""
    from datetime import timedelta

    from sqlalchemy import update

    from mailer.actors.digest import requeue_pending
    from mailer.db import utcnow
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan

    queue()  # this process's worker threads are running
    with rt.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed))
        ids = fanout.pending_ids(s, ed.id)
        s.execute(
            update(Delivery)
            .where(Delivery.id == ids[0])
            .values(attempts=1, error="421 try later", next_attempt_at=utcnow() + timedelta(seconds=0.15))
        )
    assert requeue_pending() == len(ids)
    queue()
    assert len(transport.messages) == len(ids)
    with rt.db.transaction() as s:
        first = s.get(Delivery, ids[0])
        assert (first.status, first.attempts) == ("sent", 2)
        assert s.scalar(select(Edition.status).where(Edition.period == PERIOD)) == "sent"


def test_embedded_workers_keep_their_claims_alive_and_take_back_a_dead_processs(rt, readers, transport):
    """Workers as threads beside the web app or a CLI command (no Redis) have a keeper
    too: their own claims keep a fresh heartbeat, however long a chunk takes, and the
    claims of an embedded process that died (a killed `mailer edition send`) are taken
    back: the one that may have reached the relay becomes `unknown`, the rest are sent."""
    from datetime import timedelta

    from sqlalchemy import update

    from mailer.db import utcnow
    from mailer.delivery import fanout
    from mailer.delivery.sending import live_claims
    from mailer.digest.compose import load_plan

    knobs = {"SEND_LEASE_SECONDS": "1", "SEND_WATCH_SECONDS": "0.2"}
    r = boot(replace(rt.settings, delivery=DeliveryConfig.from_env(knobs)), transport=transport)
    r.queue.stop()  # the keeper starts with the worker threads, under these settings
    long_ago = utcnow() - timedelta(hours=1)
    with r.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed))
        ids = fanout.pending_ids(s, ed.id)
        dead, mine = ids[:3], ids[3]
        s.execute(
            update(Delivery)
            .where(Delivery.id.in_(dead))
            .values(status="sending", attempts=1, claim=77, heartbeat_at=long_ago, updated_at=long_ago)
        )
        s.execute(
            update(Delivery)
            .where(Delivery.id == mine)
            .values(status="sending", attempts=1, claim=88, heartbeat_at=long_ago, updated_at=long_ago)
        )
        edition_id = ed.id
    live_claims.add(88, edition_id)  # a chunk this process is still working on
    try:
        r.queue.ensure_worker()
        deadline = time.monotonic() + 60  # loose: a busy machine
        while time.monotonic() < deadline:
            with r.db.transaction() as s:
                book = {d.id: d.status for d in s.scalars(select(Delivery).where(Delivery.edition_id == edition_id))}
                beat = s.get(Delivery, mine).heartbeat_at
            if book[dead[0]] == "unknown" and all(book[i] == "sent" for i in ids if i not in (dead[0], mine)):
                break
            time.sleep(0.05)
        assert book[dead[0]] == "unknown"  # may have reached the relay: never resent
        assert all(book[i] == "sent" for i in ids if i not in (dead[0], mine)), book
        assert book[mine] == "sending"  # alive: its heartbeat is kept, it is not taken back
        assert beat.replace(tzinfo=None) > long_ago.replace(tzinfo=None) + timedelta(minutes=59)
        assert sorted(m.recipient for m in transport.messages) == sorted({m.recipient for m in transport.messages})
        assert len(transport.messages) == len(ids) - 2
    finally:
        live_claims.drop(88)
        r.queue.stop()


def test_a_deferred_recipient_is_retried_with_backoff_while_the_batch_carries_on(rt, app, readers, queue):
    relay = Relay(defer={"reader5@": 2}).start()  # greylisting: 450 twice, then accepted
    try:
        r = use_relay(rt, relay.url, SEND_RETRY_SECONDS=0.05)
        assert cli(app, "edition", "send", PERIOD, "--wait").exit_code == 0
        queue()
    finally:
        relay.stop()
    book = ledger(r)
    deferred = next(e for e in book if e.startswith("reader5@"))
    assert book[deferred][:2] == ("sent", 3)  # two deferrals, then delivered
    assert all(n == 1 for e, (st, n, _) in book.items() if e != deferred)
    assert relay.counts() == Counter({e: 1 for e in book})


def test_one_partner_item_or_one_reader_never_stops_the_edition(rt, session, queue):
    """Issue 9.2: a title with an unknown placeholder (``__PH_NOPE__``) left every copy
    holding it pending for ever, and ``<!--BLOCK:zzz-->`` in a summary made the edition
    unrenderable. Both are text now; and a copy that truly cannot be composed (here a
    name with a line break, which no header may hold) fails that delivery alone, with
    its reason, while everyone else gets theirs."""
    from email import message_from_bytes, policy

    from mailer.actors.digest import start_edition
    from mailer.digest.editions import build_edition
    from tests.factories import PERIOD as DEC
    from tests.factories import standard_world

    w = standard_world(session)
    w.item(
        "nope",
        "naz",
        ["sexual-health"],
        day=11,
        title="Clinic news __PH_NOPE__ __PH_EMAIL",
        summary="Opening times <!--BLOCK:zzz--> and <!--BLOCK:item:999--> changed.",
    )
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    w.subscriber("kwame@x.org", partners=["naz"], name="Kwame")
    w.subscriber("david@x.org", topics=["mental-health"])
    w.subscriber("broken@x.org", topics=["sexual-health"], name="Bad\r\nBcc: everyone@x.org")
    session.commit()
    edition = build_edition(session, DEC)
    session.commit()
    runtime.current().queue.send(start_edition, edition.id)
    queue()

    book = ledger(rt)
    assert {e: st for e, (st, _, _) in book.items()} == {
        "amina@x.org": "sent",
        "kwame@x.org": "sent",
        "david@x.org": "sent",
        "broken@x.org": "failed",
    }
    assert "could not compose" in book["broken@x.org"][2] and "line breaks" in book["broken@x.org"][2]
    session.expire_all()
    assert session.get(Edition, edition.id).status == "sent"  # nothing left pending
    got = {m.recipient: message_from_bytes(m.data, policy=policy.default) for m in rt.transport.messages}
    assert set(got) == {"amina@x.org", "kwame@x.org", "david@x.org"}
    for address in ("amina@x.org", "kwame@x.org"):
        text = got[address].get_body(("plain",)).get_content()
        html = got[address].get_body(("html",)).get_content()
        assert "Clinic news __PH_NOPE__ __PH_EMAIL" in text and "Clinic news __PH_NOPE__ __PH_EMAIL" in html
        assert "<!--BLOCK:zzz-->" in text and "&lt;!--BLOCK:zzz--&gt;" in html


def test_a_dead_claim_leaves_one_unknown_the_rest_pending_and_a_late_outcome_wins(rt, readers):
    """The sweep takes back a claim whose heartbeat went stale: its lowest row (the one
    that may have been handed over) is unknown, the others pending with the attempt not
    counted; a live claim is left alone. An outcome the worker kept while the database was
    away, written later, replaces the unknown; a row given back to pending is left alone."""
    from datetime import timedelta

    from sqlalchemy import update

    from mailer.db import utcnow
    from mailer.delivery import control, fanout, sending
    from mailer.digest.compose import load_plan

    with rt.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == PERIOD))
        fanout.start_edition(s, ed, load_plan(s, ed))
        ids = fanout.pending_ids(s, ed.id)
        dead = sending.claim(s, ids[:3], token=11)
        live = sending.claim(s, ids[3:5], token=22)
        assert len(dead) == 3 and len(live) == 2
        s.execute(update(Delivery).where(Delivery.claim == 11).values(heartbeat_at=utcnow() - timedelta(seconds=60)))
        assert control.reap_stale(s, ed.id, lease_seconds=30) == 3
        assert not control.reap_stale(s, ed.id, lease_seconds=30)  # once
        rows = {d.id: d for d in s.scalars(select(Delivery).where(Delivery.id.in_(ids[:5])))}
        assert [(rows[i].status, rows[i].attempts) for i in ids[:5]] == [
            ("unknown", 1),
            ("pending", 0),
            ("pending", 0),
            ("sending", 1),
            ("sending", 1),
        ]
        assert "worker stopped" in rows[ids[0]].error and control.live(s, ed.id, 30)
    now = utcnow()
    known = [
        {"b_id": i, "b_claim": 11, "b_status": "sent", "b_error": None, "b_attempts": 1}
        | {"b_sent_at": now, "b_next": None, "b_now": now}
        for i in ids[:2]
    ]
    sending.backlog.extend(known)
    assert sending.flush_backlog(rt.db) == 2 and not sending.backlog
    with rt.db.transaction() as s:
        assert s.get(Delivery, ids[0]).status == "sent"  # the worker knew: not unknown
        assert s.get(Delivery, ids[1]).status == "pending"  # given back: someone else's now
