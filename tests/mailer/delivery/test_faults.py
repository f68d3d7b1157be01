"""Fault tests with real processes: `dramatiq` workers on Redis and PostgreSQL, an SMTP
relay on loopback. A worker killed with SIGKILL, Redis restarted, a relay that refuses
connections for a while: each time the edition completes and nobody gets two emails.

The kill test starts (and kills) workers of its own; the others share one set of workers,
one relay and one private Redis for the module, emptied and left idle between tests."""

from __future__ import annotations

import os
import time
from datetime import date

import pytest
from sqlalchemy import select

from tests.conftest import REDIS_URL, TEST_ENV, need
from tests.factories import bench_edition
from tests.mailservers import PrivateRedis, Relay, Workers

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

    def __init__(self, redis: PrivateRedis, relay: Relay, workers: Workers):
        self.redis, self.relay, self.workers = redis, relay, workers

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


@pytest.fixture(scope="module")
def shared_fleet(database_url, tmp_path_factory):
    need(REDIS_URL, "TEST_REDIS_URL")  # the Redis tests are on: this module's Redis is its own
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    relay = Relay().start()
    workers = None
    try:
        # Breaker off: the relay-refusing test wants the retries, not a paused edition.
        workers = Workers(
            worker_env(
                database_url, tmp_path_factory.mktemp("var"), server.url, relay.url, SEND_BREAKER_FAILURES=10_000
            )
        )
        yield Fleet(server, relay, workers)
    finally:
        if workers is not None:
            workers.stop()
        relay.stop()
        server.stop()


@pytest.fixture
def fleet(rt, shared_fleet):
    """The shared workers, idle, with an empty relay (no delay) and an empty Redis."""
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


def test_worker_killed_mid_send_edition_completes_without_second_emails(rt, redis_url, short_edition):
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
        survivor = Workers(env)
        wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.3)
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()
        relay.stop()
    got = relay.counts()
    book = ledger(rt, edition)
    assert max(got.values()) == 1, "somebody got two emails"
    by_status = {}
    for email, (st, _, _) in book.items():
        by_status.setdefault(st, []).append(email)
    assert set(by_status) <= {"sent", "unknown"}
    assert all(got[e] == 1 for e in by_status["sent"])  # the ledger's "sent" is true
    # The deliveries the dead worker held are marked, not resent and not silently lost:
    unknown = by_status.get("unknown", [])
    assert 1 <= len(unknown) <= 2 * 5  # at most one chunk per thread of the killed worker
    assert all(got[e] <= 1 for e in unknown)
    assert all("worker stopped" in book[e][2] for e in unknown)
    assert len(book) == len(by_status["sent"]) + len(unknown)


def test_redis_restart_mid_send_edition_completes(rt, fleet, short_edition):
    edition, server, relay = short_edition, fleet.redis, fleet.relay
    relay.delay = 0.02
    start_sending(server.url, edition)
    wait_for(lambda: len(relay.messages) >= 20, 30, "the first messages")
    server.stop()
    time.sleep(1.0)  # Redis really is away for a while (PostgreSQL + Redis only)
    sent_while_down = len(relay.messages)
    server.start()  # same port, same AOF: the queue comes back
    wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.3)
    got = relay.counts()
    book = ledger(rt, edition)
    assert sent_while_down < len(book)  # the restart really was mid-send
    assert {st for st, _, _ in book.values()} == {"sent"}
    assert set(got) == set(book) and max(got.values()) == 1


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

    wait_for(refused, 30, "a refused attempt recorded in the ledger", 0.3)
    time.sleep(1.0)  # refused for a while (PostgreSQL + Redis only)
    relay.start()
    wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.3)
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
    asked = time.monotonic()

    def manage_link_arrived():
        return any(
            r.lower() == person_email and b"/manage/" in d and b"List-Id" not in d for r, _, d in list(relay.messages)
        )

    wait_for(manage_link_arrived, 30, "the manage-link email")
    waited = time.monotonic() - asked
    digest_done = status(rt, edition) == "sent"
    wait_for(lambda: status(rt, edition) == "sent", 90, "the edition to complete", 0.3)
    assert not digest_done, "the digest run finished first: the test proved nothing"
    # At most the batch a thread is busy with, not the run's queue of batches.
    assert waited < 3, f"the manage link waited {waited:.1f}s behind digest batches"
