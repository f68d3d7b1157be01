"""Fault tests with real processes: `dramatiq` workers on Redis and PostgreSQL, an SMTP
relay on loopback. A worker killed with SIGKILL, Redis restarted, a relay that refuses
connections for a while: each time the edition completes and nobody gets two emails.

The kill test starts (and kills) workers of its own; the others share one set of workers,
one relay and one private Redis for the module, emptied and left idle between tests."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from datetime import date

import pytest
from sqlalchemy import select

from bench.servers import PrivateRedis
from tests.conftest import REDIS_URL, TEST_ENV, need
from tests.factories import bench_edition
from tests.mailservers import Relay, Workers

pytestmark = [pytest.mark.redis, pytest.mark.dialects("postgresql")]
PERIOD = date.today().strftime("%Y-%m")


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def redis_url():
    url = need(REDIS_URL, "TEST_REDIS_URL")
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


def make_edition(rt, readers: int) -> int:
    """An edition of the 40-item benchmark catalogue for 3 demo + ``readers`` readers."""
    return bench_edition(rt, readers, period=PERIOD)


@pytest.fixture
def edition(rt):
    """153 deliveries: a run long enough to overtake (see the transactional test)."""
    return make_edition(rt, 150)


@pytest.fixture
def short_edition(rt):
    """63 deliveries: enough for a fault to strike mid-send."""
    return make_edition(rt, 60)


def worker_env(database_url: str, var_dir, redis_url: str, smtp_url: str, **knobs) -> dict[str, str]:
    env = dict(
        os.environ,
        **TEST_ENV,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SMTP_URL=smtp_url,
        VAR_DIR=str(var_dir),
        SEND_BATCH_SIZE="20",
        SEND_CHUNK_SIZE="5",
        SEND_LEASE_SECONDS="2",
        SEND_WATCH_SECONDS="0.5",
        SEND_RETRY_SECONDS="0.3",
    )
    env.update({k: str(v) for k, v in knobs.items()})
    return env


class Fleet:
    """The module's shared workers, with the relay and private Redis they use."""

    def __init__(self, redis: PrivateRedis, relay: Relay, env: dict[str, str]):
        self.redis, self.relay, self.env = redis, relay, env
        self.workers: Workers | None = None

    def run(self) -> None:
        if self.workers is None:
            self.workers = Workers(self.env)

    def pause(self) -> None:
        if self.workers is not None:
            self.workers.stop()
            self.workers = None

    def idle(self) -> None:
        """Wait until the workers have nothing queued, delayed or in hand, then forget
        everything Redis holds (queues, holds, rate windows): the next test starts clean."""
        import redis as redis_client
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=self.redis.url)
        try:
            for queue in ("digest", "transactional"):
                broker.join(queue, interval=50, timeout=60_000)
        finally:
            broker.close()
        redis_client.Redis.from_url(self.redis.url).flushdb()


_fleets: list[Fleet] = []  # the module's shared fleet, once made


@pytest.fixture(scope="module")
def shared_fleet(database_url, tmp_path_factory):
    need(REDIS_URL, "TEST_REDIS_URL")  # the Redis tests are on: this module's Redis is its own
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    relay = Relay().start()
    # Breaker off: the relay-refusing test wants the retries, not a paused edition.
    env = worker_env(database_url, tmp_path_factory.mktemp("var"), server.url, relay.url, SEND_BREAKER_FAILURES=10_000)
    fleet = Fleet(server, relay, env)
    _fleets.append(fleet)
    try:
        yield fleet
    finally:
        _fleets.remove(fleet)
        fleet.pause()
        relay.stop()
        server.stop()


@pytest.fixture
def fleet(rt, shared_fleet):
    """The shared workers, idle, with an empty relay (no delay) and an empty Redis."""
    shared_fleet.run()
    shared_fleet.idle()
    relay = shared_fleet.relay
    with relay._lock:
        relay.messages.clear()
    relay.delay = 0.0
    yield shared_fleet
    if relay.controller is None:  # a test that switched the relay off
        relay.start()
    if shared_fleet.redis.proc.poll() is not None:  # a test that stopped Redis
        shared_fleet.redis.start()
    shared_fleet.idle()


@pytest.fixture
def own_workers():
    """For a test that starts workers of its own on the test database: the shared fleet's
    workers, if they run, are stopped first (the next test that wants them starts them
    again). Their sweeps would find this test's deliveries due with nothing in their own,
    empty, queue, or its claims stale by their lease, and send them to the fleet's relay."""
    for shared in _fleets:
        shared.pause()


def start_sending(redis_url: str, edition_id: int) -> None:
    """What `mailer edition send` does with REDIS_URL set: one message onto the queue."""
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url)
    broker.declare_queue("digest")
    broker.enqueue(Message(queue_name="digest", actor_name="start_edition", args=(edition_id,), kwargs={}, options={}))
    broker.close()


def status(rt, edition_id: int) -> str:
    from mailer.digest.models import Edition

    with rt.db.transaction() as s:
        return s.get(Edition, edition_id).status


def ledger(rt, edition_id: int) -> dict[str, tuple[str, int, str | None]]:
    """email -> (status, attempts, error) for every delivery of the edition."""
    from mailer.delivery.models import Delivery
    from subscribers.models import Subscriber

    with rt.db.transaction() as s:
        rows = s.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.edition_id == edition_id)
        ).all()
    return {r.email.lower(): (r.status, r.attempts, r.error) for r in rows}


def by_status(book) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for email, (st, _, _) in book.items():
        out.setdefault(st, []).append(email)
    return out


def assert_killed_ledger(rt, edition: int, got, killed_threads: int) -> None:
    """Everything sent once, except at most one ``unknown`` per killed thread (sent at most
    once, never resent), marked as such; the ledger's ``sent`` is true."""
    book = ledger(rt, edition)
    assert max(got.values()) == 1, "somebody got two emails"
    states = by_status(book)
    assert set(states) <= {"sent", "unknown"}
    assert all(got[e] == 1 for e in states["sent"])
    unknown = states.get("unknown", [])
    assert len(unknown) <= killed_threads  # one per thread: each outcome recorded at once
    assert all(got.get(e, 0) <= 1 and "worker stopped" in book[e][2] for e in unknown)
    assert len(book) == len(states["sent"]) + len(unknown)


def test_worker_killed_mid_send_edition_completes_without_second_emails(rt, own_workers, redis_url, short_edition):
    edition = short_edition
    relay = Relay(delay=0.04).start()
    env = worker_env(rt.settings.database_url, rt.settings.var_dir, redis_url, relay.url)
    # Only the doomed worker runs until the kill, so it certainly holds claimed deliveries
    # in flight (the relay is slow) when it dies; the survivor starts afterwards.
    doomed, survivor = Workers(env), None
    try:
        start_sending(redis_url, edition)
        wait_for(lambda: len(relay.messages) >= 30, 30, "the first messages")
        # Kill while a chunk is claimed (on a loaded machine the poll above can land between
        # chunks, and a kill there leaves nothing in flight to test).
        wait_for(
            lambda: any(st == "sending" for st, _, _ in ledger(rt, edition).values()), 30, "a claimed chunk", 0.005
        )
        doomed.kill9_worker()  # SIGKILL: no chance to record anything
        relay.delay = 0.0  # the fault has struck mid-send: the rest may go at full speed
        survivor = Workers(env)
        wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()
        relay.stop()
    assert_killed_ledger(rt, edition, relay.counts(), killed_threads=2)


def test_one_of_two_workers_killed_the_other_takes_over_its_claims_and_batches(
    rt, own_workers, redis_url, short_edition
):
    """Two worker processes (two machines, say) share the send; one dies with SIGKILL. Its
    claims (heartbeat gone stale after SEND_LEASE_SECONDS) and the batches it had fetched
    are taken over by the survivor's sweep: the edition completes within seconds."""
    edition = short_edition
    relay = Relay(delay=0.15).start()
    env = worker_env(rt.settings.database_url, rt.settings.var_dir, redis_url, relay.url)
    doomed = survivor = None
    try:
        doomed, survivor = Workers(env), Workers(env)
        start_sending(redis_url, edition)
        wait_for(lambda: len(relay.messages) >= 12, 30, "the first messages")
        doomed.kill9_worker()
        killed = time.monotonic()
        relay.delay = 0.0  # the fault has struck mid-send: the rest may go at full speed
        wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
        took = time.monotonic() - killed
    finally:
        for w in (doomed, survivor):
            if w is not None:
                w.stop()
        relay.stop()
    assert_killed_ledger(rt, edition, relay.counts(), killed_threads=2)
    assert took < 60, f"recovery took {took:.0f}s"  # lease 2 s, sweep 0.5 s: loose on a busy machine


def test_all_workers_killed_then_restarted_edition_completes(rt, own_workers, redis_url, short_edition):
    edition = short_edition
    relay = Relay(delay=0.1).start()
    env = worker_env(rt.settings.database_url, rt.settings.var_dir, redis_url, relay.url)
    first = Workers(env, processes=2)
    second = None
    try:
        start_sending(redis_url, edition)
        wait_for(lambda: len(relay.messages) >= 12, 30, "the first messages")
        os.killpg(first.proc.pid, signal.SIGKILL)  # every process of the group at once
        first.proc.wait(10)
        relay.delay = 0.0  # the fault has struck mid-send: the rest may go at full speed
        second = Workers(env)
        wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        relay.stop()
    assert_killed_ledger(rt, edition, relay.counts(), killed_threads=4)


def test_two_sigterms_stop_a_worker_gracefully_nothing_unknown(rt, own_workers, redis_url, short_edition):
    """What a service manager's group stop delivers: SIGTERM to the whole group, twice.
    The worker finishes the message in the relay's hands, gives the rest of its claim back
    and exits; nothing is unknown, and the next worker sends the rest."""
    edition = short_edition
    relay = Relay(delay=0.1).start()
    env = worker_env(rt.settings.database_url, rt.settings.var_dir, redis_url, relay.url)
    first, second = Workers(env), None
    try:
        start_sending(redis_url, edition)
        wait_for(lambda: len(relay.messages) >= 8, 30, "the first messages")
        os.killpg(first.proc.pid, signal.SIGTERM)
        os.killpg(first.proc.pid, signal.SIGTERM)
        first.proc.wait(30)
        stopped = by_status(ledger(rt, edition))
        sent_before = len(relay.messages)
        relay.delay = 0.0  # the stop came mid-send: the rest may go at full speed
        second = Workers(env)
        wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        relay.stop()
    assert set(stopped) <= {"sent", "pending"} and stopped.get("pending"), stopped.keys()
    assert len(stopped["sent"]) == sent_before  # every hand-over recorded before exiting
    got, book = relay.counts(), ledger(rt, edition)
    assert {st for st, _, _ in book.values()} == {"sent"}
    assert set(got) == set(book) and max(got.values()) == 1


def test_redis_restart_mid_send_edition_completes(rt, fleet, short_edition):
    edition, server, relay = short_edition, fleet.redis, fleet.relay
    relay.delay = 0.02
    start_sending(server.url, edition)
    wait_for(lambda: len(relay.messages) >= 20, 30, "the first messages")
    server.stop()
    time.sleep(1.0)  # Redis really is away for a while (PostgreSQL + Redis only)
    sent_while_down = len(relay.messages)
    relay.delay = 0.0  # the fault has struck mid-send: the rest may go at full speed
    server.start()  # same port, same AOF: the queue comes back
    wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
    got = relay.counts()
    book = ledger(rt, edition)
    assert sent_while_down < len(book)  # the restart really was mid-send
    assert {st for st, _, _ in book.values()} == {"sent"}
    assert set(got) == set(book) and max(got.values()) == 1


def test_redis_restart_that_lost_the_queue_edition_completes_from_the_ledger(rt, fleet, short_edition):
    """Redis comes back empty (no persistence): every queued batch is gone, and no
    scheduler runs. The workers' sweep finds due deliveries with nothing in flight and
    enqueues them again."""
    fleet.relay.delay = 0.05
    sent_while_down = lose_the_queue_mid_send(rt, fleet.redis, fleet.relay, short_edition)
    assert_lost_queue_sent_once(rt, fleet.relay, short_edition, sent_while_down)


def lose_the_queue_mid_send(rt, server: PrivateRedis, relay: Relay, edition: int) -> int:
    """Start the send, stop Redis after ten copies, start it again empty (no persistence:
    its queue is gone) and wait for the edition to complete; how many copies had gone
    when Redis stopped."""
    start_sending(server.url, edition)
    wait_for(lambda: len(relay.messages) >= 10, 30, "the first messages")
    server.stop()
    sent_while_down = len(relay.messages)
    for f in server.dir.iterdir():  # the queue is lost with the AOF
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    relay.delay = 0.0  # the fault has struck mid-send: the rest may go at full speed
    server.start()
    wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
    return sent_while_down


def assert_lost_queue_sent_once(rt, relay: Relay, edition: int, sent_while_down: int) -> None:
    got, book = relay.counts(), ledger(rt, edition)
    assert sent_while_down < len(book)  # the queue really was lost mid-send
    assert {st for st, _, _ in book.values()} == {"sent"}
    assert set(got) == set(book) and max(got.values()) == 1


def test_queue_lost_with_redis_is_enqueued_again_without_waiting_out_the_lease(
    rt, own_workers, redis_url, short_edition, tmp_path
):
    """Redis comes back empty under workers whose claims last ten minutes: the sweep finds
    due deliveries, no live claim and no digest message anywhere, and enqueues them again
    at once (waiting out the lease, the edition would take ten minutes)."""
    server = PrivateRedis(tmp_path).start()
    relay = Relay(delay=0.05).start()
    # Batches of 5: more than a worker prefetches, so some are only in Redis when it goes.
    env = worker_env(
        rt.settings.database_url, rt.settings.var_dir, server.url, relay.url, SEND_LEASE_SECONDS=600, SEND_BATCH_SIZE=5
    )
    workers = None
    try:
        workers = Workers(env)
        sent_while_down = lose_the_queue_mid_send(rt, server, relay, short_edition)
        log = "".join(workers.log)
    finally:
        if workers is not None:
            workers.stop()
        relay.stop()
        server.stop()
    assert_lost_queue_sent_once(rt, relay, short_edition, sent_while_down)
    assert "its queue messages are gone; enqueued" in log


def test_relay_refusing_connections_then_back_edition_completes_with_retries_in_ledger(rt, fleet, short_edition):
    edition, relay = short_edition, fleet.relay
    relay.stop()  # nothing listens on its port for now
    start_sending(fleet.redis.url, edition)

    def refused():
        return [
            e
            for e, (st, n, err) in ledger(rt, edition).items()
            if st == "pending" and n >= 1 and "cannot connect" in (err or "")
        ]

    wait_for(refused, 30, "a refused attempt recorded in the ledger", 0.1)
    time.sleep(1.0)  # refused for a while (PostgreSQL + Redis only)
    relay.start()
    wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
    got = relay.counts()
    book = ledger(rt, edition)
    assert {st for st, _, _ in book.values()} == {"sent"}
    assert set(got) == set(book) and max(got.values()) == 1
    assert max(n for _, n, _ in book.values()) >= 2  # retried, and the ledger shows it


def test_a_transactional_email_overtakes_a_digest_run(rt, fleet, edition):
    """Someone waiting for a manage link is not queued behind the edition's batches."""
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    from subscribers.models import Subscriber

    with rt.db.transaction() as s:
        person = s.scalar(select(Subscriber).order_by(Subscriber.id.desc()).limit(1))
        person_id, person_email = person.id, person.email.lower()
    # 153 digests at 80 ms on 2 threads: a run of ~6 s, in batches of ~1.6 s.
    relay, redis_url = fleet.relay, fleet.redis.url
    relay.delay = 0.08
    start_sending(redis_url, edition)
    wait_for(lambda: len(relay.messages) >= 5, 30, "the digest run to start")
    broker = RedisBroker(url=redis_url)
    broker.declare_queue("transactional")
    broker.enqueue(
        Message(
            queue_name="transactional",
            actor_name="send_transactional",
            args=("manage", person_id),
            kwargs={},
            options={},
        )
    )
    broker.close()
    asked, sent_before = time.monotonic(), len(relay.messages)

    def manage_link_at():
        messages = list(relay.messages)
        return next(
            (
                i
                for i, (r, _, d) in enumerate(messages)
                if r.lower() == person_email and b"/manage/" in d and b"List-Id" not in d
            ),
            None,
        )

    wait_for(lambda: manage_link_at() is not None, 30, "the manage-link email")
    waited = time.monotonic() - asked
    digests_ahead = manage_link_at() - sent_before  # digests the relay took between the ask and the link
    digest_done = status(rt, edition) == "sent"
    relay.delay = 0.0  # overtaken mid-run: the rest of the run may go at full speed
    wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.1)
    assert not digest_done, "the digest run finished first: the test proved nothing"
    # At most the batch each of the 2 threads is busy with (20 each), not the run's queue of
    # batches (about 145 digests were still to go). Counted, not timed: a loaded machine
    # sends a batch more slowly, but not more of them.
    assert digests_ahead <= 2 * 20, f"the manage link waited behind {digests_ahead} digests ({waited:.1f}s)"


def test_postgresql_restart_mid_send_leaves_no_unknown(
    rt, own_workers, redis_url, tmp_path
):  # redis_url: the Redis tests are on
    """`pg_ctl restart -m fast` on a private cluster mid-send: the workers keep the
    outcomes they could not write and write them when it is back; the edition completes,
    everyone gets one copy, and the ledger shows no `unknown`."""
    from types import SimpleNamespace

    from bench.seed import seed
    from bench.servers import PrivatePostgres
    from mailer.db import Database
    from mailer.digest.editions import build_edition
    from mailer.schema import upgrade
    from mailer.settings import Settings

    pg = PrivatePostgres().start()
    server = PrivateRedis(tmp_path).start()
    redis_url = server.url
    relay = Relay(delay=0.05).start()
    workers = None
    try:
        env = worker_env(pg.url, tmp_path / "var", redis_url, relay.url)
        keys = Settings.from_env(env).suppression_keys
        upgrade(pg.url, suppression_keys=keys)
        db = Database(pg.url, info={"suppression_keys": keys})
        mine = SimpleNamespace(db=db)
        with db.transaction() as s:
            seed(s, 60, date.today(), random.Random(3))
            edition = build_edition(s, PERIOD).id
        workers = Workers(env)
        start_sending(redis_url, edition)
        wait_for(lambda: len(relay.messages) >= 15, 30, "the first messages")
        pg.restart()
        restarted_at = len(relay.messages)
        relay.delay = 0.0  # the restart came mid-send: the rest may go at full speed
        wait_for(lambda: status(mine, edition) == "sent", 90, "the edition to complete", 0.1)
        got, book = relay.counts(), ledger(mine, edition)
        db.dispose()
    finally:
        if workers is not None:
            workers.stop()
        relay.stop()
        server.stop()
        pg.stop()
    assert restarted_at < len(book)  # the restart really was mid-send
    assert {st for st, _, _ in book.values()} == {"sent"}
    assert set(got) == set(book) and max(got.values()) == 1
