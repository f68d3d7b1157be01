"""``/metrics`` and the log lines: counts after a real send through the queue, request
latency by route template, who may scrape, the leader and the scheduler's runs, queue
depth in Redis, and JSON log lines with their ids and no tokens."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailer.settings import ConfigError, Settings
from tests.conftest import PG_URL, REDIS_URL, empty_postgres, need

TOKEN = "s3cr3t-Manage-Token-0123456789abcdef"


def scrape(client, **kw) -> dict[tuple[str, frozenset], float]:
    resp = client.get("/metrics", **kw)
    assert resp.status_code == 200, resp.data
    assert resp.content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(resp.get_data(as_text=True))
        for s in fam.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _send_world_edition(session, queue):
    """Three readers and one whose copy cannot be composed (a name with a line break):
    the edition goes through the real queue and workers."""
    from mailer.actors.digest import start_edition
    from mailer.digest.editions import build_edition
    from mailer.runtime import current
    from tests.factories import PERIOD, standard_world

    w = standard_world(session)
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    w.subscriber("kwame@x.org", partners=["naz"])
    w.subscriber("david@x.org", topics=["mental-health"])
    w.subscriber("broken@x.org", topics=["sexual-health"], name="Bad\r\nBcc: everyone@x.org")
    session.commit()
    edition = build_edition(session, PERIOD)
    session.commit()
    current().queue.send(start_edition, edition.id)
    queue()
    return PERIOD


def test_metrics_count_a_real_send_by_edition_sent_and_failed(rt, client, session, queue, transport):
    before = scrape(client)
    period = _send_world_edition(session, queue)
    after = scrape(client)

    assert len(transport.messages) == 3
    assert value(after, "mailer_deliveries", edition=period, status="sent") == 3
    assert value(after, "mailer_deliveries", edition=period, status="failed") == 1
    assert value(after, "mailer_deliveries", edition=period, status="pending") == 0
    assert value(after, "mailer_deliveries", edition=period, status="unknown") == 0
    assert value(after, "mailer_deliveries_waiting_retry", edition=period) == 0
    # The send rate's counter (this process ran the embedded workers) moved by the copies sent.
    sent = "mailer_emails_sent_total"
    assert value(after, sent) - value(before, sent) == 3
    assert value(after, "mailer_queue_messages", queue="digest", state="waiting") == 0
    assert value(after, "mailer_metrics_source_up", source="database") == 1
    assert value(after, "mailer_metrics_source_up", source="queue") == 1


def test_bounces_complaints_schedule_runs_feeds_and_leader_are_read_from_the_store(rt, client, session):
    from mailer import schedule_runs
    from mailer.content.models import Partner
    from mailer.delivery.suppression import log_bounce
    from mailer.leadership import leadership_for

    log_bounce(session, None, "gone@x.org", "hard", "550 no such user")
    log_bounce(session, None, "angry@x.org", "complaint", "abuse report")
    log_bounce(session, None, "angry2@x.org", "complaint", "abuse report")
    ran = datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)
    schedule_runs.claim(session, "monthly-digest", ran, outcome=schedule_runs.DONE, leader="a:1", now=ran)
    schedule_runs.claim(session, "feeds", ran, outcome=schedule_runs.MISSED, leader="a:1", now=ran)
    session.add_all(
        [
            Partner(slug="ok", name="Ok", feed_url="https://ok.example.org/feed"),
            Partner(
                slug="bad",
                name="Bad",
                feed_url="https://bad.example.org/feed",
                feed_error="HTTP 500",
                feed_checked_at=ran,
            ),
        ]
    )
    session.commit()

    got = scrape(client)
    assert value(got, "mailer_bounces_total", kind="hard") == 1
    assert value(got, "mailer_bounces_total", kind="complaint") == 2
    assert value(got, "mailer_bounces_total", kind="soft") == 0
    assert value(got, "mailer_schedule_last_run_timestamp_seconds", job="monthly-digest") == ran.timestamp()
    assert ("mailer_schedule_last_run_timestamp_seconds", frozenset({("job", "feeds")})) not in got
    assert value(got, "mailer_schedule_missed_runs", job="feeds") == 1
    assert value(got, "mailer_feeds", state="failing") == 1 and value(got, "mailer_feeds", state="ok") == 1
    assert value(got, "mailer_feed_last_poll_timestamp_seconds") == ran.timestamp()
    assert value(got, "mailer_scheduler_has_leader") == 0

    lock = leadership_for(rt.settings, me="sched-host:4242")  # PostgreSQL lock or file lock
    assert lock.acquire()
    try:
        got = scrape(client)
        assert value(got, "mailer_scheduler_leader", process="sched-host:4242") == 1
        assert value(got, "mailer_scheduler_has_leader") == 1
    finally:
        lock.close()
    assert value(scrape(client), "mailer_scheduler_has_leader") == 0


def test_deferrals_and_rate_limit_waits_are_counted_where_they_happen(rt, client, session, queue):
    """A greylisting relay defers one reader twice; SEND_RATE=2 makes the senders wait."""
    from mailer.boot import boot
    from mailer.mail.transport import SMTPTransport
    from mailer.settings.delivery import DeliveryConfig
    from tests.mailservers import Relay

    relay = Relay(defer={"kwame@": 2}).start()
    try:
        cfg = DeliveryConfig.from_env({"SEND_RETRY_SECONDS": "0.2", "SEND_RATE": "2"})
        boot(dataclasses.replace(rt.settings, smtp_url=relay.url, delivery=cfg), transport=SMTPTransport(relay.url))
        before = scrape(client)
        period = _send_world_edition(session, queue)
        after = scrape(client)
    finally:
        relay.stop()
    assert relay.counts()["kwame@x.org"] == 1
    assert value(after, "mailer_deliveries", edition=period, status="sent") == 3
    delta = {
        name: value(after, name) - value(before, name)
        for name in (
            "mailer_deliveries_deferred_total",
            "mailer_rate_limit_waits_total",
            "mailer_rate_limit_wait_seconds_total",
            "mailer_emails_sent_total",
        )
    }
    assert delta["mailer_deliveries_deferred_total"] == 2
    assert delta["mailer_emails_sent_total"] == 3
    assert delta["mailer_rate_limit_waits_total"] >= 1 and delta["mailer_rate_limit_wait_seconds_total"] > 0


def test_a_failing_feed_poll_is_counted_and_shown_as_failing(rt, client, session, queue):
    from mailer.actors.scheduled import poll_feeds
    from mailer.content.models import Partner

    session.add(Partner(slug="local", name="Local", feed_url="http://127.0.0.1:9/feed.xml"))
    session.commit()
    before = scrape(client)
    rt.queue.send(poll_feeds)
    queue()
    after = scrape(client)
    polls = "mailer_feed_polls_total"
    assert value(after, polls, outcome="error") - value(before, polls, outcome="error") == 1
    assert value(after, polls, outcome="ok") == value(before, polls, outcome="ok")
    assert value(after, "mailer_feeds", state="failing") == 1
    assert value(after, "mailer_feed_last_poll_timestamp_seconds") > 0


def test_request_latency_is_labelled_by_route_template_never_the_token(client):
    for _ in range(2):
        client.get(f"/manage/{TOKEN}")
    client.get(f"/no/such/{TOKEN}")
    resp = client.get("/metrics")
    body = resp.get_data(as_text=True)
    assert TOKEN not in body
    got = scrape(client)
    assert (
        value(got, "mailer_http_request_duration_seconds_count", route="/manage/<token>", method="GET", status="400")
        >= 2
    )
    assert (
        value(got, "mailer_http_request_duration_seconds_count", route="(unmatched)", method="GET", status="404") >= 1
    )


def test_metrics_are_refused_to_clients_outside_metrics_allow_or_without_the_token(rt, settings, transport):
    from mailer.app import create_app

    outside = {"REMOTE_ADDR": "203.0.113.9"}
    client = create_app(settings, transport).test_client()
    resp = client.get("/metrics", environ_base=outside)
    assert resp.status_code == 403 and b"mailer_" not in resp.data
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200

    # A token opens it from anywhere; behind a proxy, a forwarded outside client is outside.
    token = "metrics-token-0123456789"
    guarded = dataclasses.replace(settings, metrics_token=token, trusted_proxies=1)
    client = create_app(guarded, transport).test_client()
    assert client.get("/metrics", environ_base=outside).status_code == 401
    assert (
        client.get(
            "/metrics", environ_base=outside, headers={"Authorization": "Bearer wrong-token-0123456789"}
        ).status_code
        == 401
    )
    via_proxy = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})  # peer is loopback
    assert via_proxy.status_code == 401
    ok = client.get("/metrics", environ_base=outside, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and b"mailer_deliveries" in ok.data


def test_json_log_lines_carry_the_request_id_and_never_a_token(settings, rt, transport):
    from mailer.app import create_app
    from mailer.logs import configure_logging

    json_settings = dataclasses.replace(settings, log_format="json")
    app = create_app(json_settings, transport)
    out = io.StringIO()
    configure_logging(json_settings, stream=out)

    @app.get("/test-logs-a-link")  # a view that logs a reader's full manage URL
    def logs_a_link():
        logging.getLogger("mailer.test").warning(
            "sent link %s to a reader", f"{settings.base_url}/manage/{TOKEN}/data?x=1"
        )
        return "ok"

    client = app.test_client()
    first = client.get(f"/manage/{TOKEN}")
    second = client.get("/test-logs-a-link")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert TOKEN not in out.getvalue()

    by_request = {}
    for line in lines:
        by_request.setdefault(line.get("request_id"), []).append(line)
    page = [ln for ln in by_request[first.headers["X-Request-ID"]] if ln["logger"] == "mailer.request"]
    assert page and page[0]["route"] == "/manage/<token>" and page[0]["status"] == 400
    assert page[0]["level"] == "INFO" and "time" in page[0]
    link = [ln for ln in by_request[second.headers["X-Request-ID"]] if ln["logger"] == "mailer.test"]
    assert link[0]["message"] == f"sent link {settings.base_url}/manage/<token>/data to a reader"
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_a_sending_log_line_carries_its_edition_and_delivery_ids(settings, rt, session, queue):
    from sqlalchemy import select

    from mailer.delivery.models import Delivery
    from mailer.logs import configure_logging
    from subscribers.models import Subscriber

    out = io.StringIO()
    configure_logging(dataclasses.replace(settings, log_format="json"), stream=out)
    try:
        _send_world_edition(session, queue)
    finally:
        configure_logging(settings)
    broken = session.scalar(
        select(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Subscriber.email == "broken@x.org")
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    failure = [ln for ln in lines if "could not compose" in ln["message"]]
    assert failure and failure[0]["delivery_id"] == broken.id
    assert failure[0]["edition_id"] == broken.edition_id
    assert "exc_info" in failure[0]  # the traceback travels inside the one JSON line


def test_log_and_metrics_settings_refuse_what_cannot_work(tmp_path):
    base = {"MAILER_ENV": "test", "VAR_DIR": str(tmp_path)}
    for name, bad in (
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "LOUD"),
        ("METRICS_ALLOW", "10.0.0.0/33"),
        ("METRICS_TOKEN", "short"),
        ("WORKER_METRICS", "9191"),
    ):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**base, name: bad})
    s = Settings.from_env({**base, "METRICS_ALLOW": "10.1.0.0/16, 192.0.2.7", "WORKER_METRICS": "0.0.0.0:9191"})
    assert [str(n) for n in s.metrics_allow] == ["10.1.0.0/16", "192.0.2.7/32"]
    assert s.worker_metrics == ("0.0.0.0", 9191)


@pytest.mark.redis
def test_queue_depth_is_read_from_redis():
    import redis
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.message import Message

    from mailer.metrics.collectors import queue_sizes

    url = need(REDIS_URL, "TEST_REDIS_URL")
    broker = RedisBroker(url=url, namespace="mailer-metrics-test")
    try:
        broker.declare_queue("digest")
        for i in range(3):
            broker.enqueue(Message(queue_name="digest", actor_name="a", args=(i,), kwargs={}, options={}))
        broker.enqueue(Message(queue_name="digest", actor_name="a", args=(), kwargs={}, options={}), delay=60_000)
        sizes = queue_sizes(broker)
        assert sizes["digest"] == {"waiting": 3, "delayed": 1, "dead": 0}
        assert sizes["transactional"] == {"waiting": 0, "delayed": 0, "dead": 0}
    finally:
        broker.flush_all()
        client = redis.Redis.from_url(url)
        for key in client.scan_iter("mailer-metrics-test*"):
            client.delete(key)
        broker.close()


@pytest.mark.redis
@pytest.mark.postgres
def test_worker_and_gunicorn_processes_report_together(tmp_path):
    """Production shape: `mailer worker` with two dramatiq processes serves their summed
    events and Dramatiq's own metrics on WORKER_METRICS; two gunicorn workers sharing
    PROMETHEUS_MULTIPROC_DIR answer /metrics with every request counted once."""
    import os
    import signal
    import subprocess
    import urllib.request

    import redis

    from tests.test_redis_workers import BIN, ROOT, _port, _run, _up, _wait_for

    pg, redis_url = need(PG_URL, "TEST_DATABASE_URL"), need(REDIS_URL, "TEST_REDIS_URL")
    redis.Redis.from_url(redis_url).flushdb()
    web_port, worker_port = _port(), _port()
    (tmp_path / "web-metrics").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": pg,
        "REDIS_URL": redis_url,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "redis-test-key",
        "MAILER_ENV": "test",
        "BASE_URL": f"http://127.0.0.1:{web_port}",
        "WORKER_METRICS": f"127.0.0.1:{worker_port}",
        "dramatiq_prom_db": str(tmp_path / "worker-metrics"),
        "LOG_FORMAT": "json",
    }
    # What `mailer db upgrade` does, in this process (as tests/test_redis_workers.py's stack
    # does): the processes under test are the workers and gunicorn, and a `mailer` process
    # costs over a second of CPU to start.
    from mailer.schema import upgrade
    from mailer.settings import Settings

    settings = Settings.from_env(env)
    upgrade(pg, suppression_keys=settings.suppression_keys, totp_keys=settings.totp_keys)
    empty_postgres(pg)
    worker_log = open(tmp_path / "worker.log", "w")
    procs = [
        subprocess.Popen(
            [str(BIN / "mailer"), "worker", "--processes", "2"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=worker_log,
            start_new_session=True,
        ),
        subprocess.Popen(
            [str(BIN / "gunicorn"), "-b", f"127.0.0.1:{web_port}", "-w", "2", "wsgi:app"],
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "web-metrics")},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        _run(env, "seed-demo")  # while the workers and the web server boot
        _wait_for(lambda: _up(web_port) and _up(worker_port), timeout=60, what="gunicorn and worker metrics")
        # `mailer worker` became Dramatiq's command line under gevent, in the same process.
        cmdline = open(f"/proc/{procs[0].pid}/cmdline", "rb").read().split(b"\0")
        assert cmdline[1:6] == [b"-m", b"gevent.monkey", b"--module", b"dramatiq", b"mailer.worker"]
        assert cmdline[8:10] == [b"--threads", b"8"]  # greenlets' default: see mailer/cli/worker.py
        period = datetime.now().strftime("%Y-%m")
        _run(env, "edition", "build", "--period", period)
        assert "Edition sent: sent 3" in _run(env, "edition", "send", period, "--wait", "--timeout", "90")

        def read(url):
            text_ = urllib.request.urlopen(url, timeout=10).read().decode()
            return {
                (s.name, frozenset(s.labels.items())): s.value
                for fam in text_string_to_metric_families(text_)
                for s in fam.samples
            }

        workers = read(f"http://127.0.0.1:{worker_port}/")
        assert value(workers, "mailer_emails_sent_total") == 3
        assert (
            sum(
                v
                for (n, labels), v in workers.items()
                if n == "dramatiq_messages_total" and ("actor_name", "send_deliveries") in labels
            )
            >= 1
        )

        for _ in range(6):
            urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=10).read()
        web = read(f"http://127.0.0.1:{web_port}/metrics")  # loopback: METRICS_ALLOW's default
        assert (
            value(web, "mailer_http_request_duration_seconds_count", route="/healthz", method="GET", status="200") == 6
        )
        assert value(web, "mailer_deliveries", edition=period, status="sent") == 3
        assert value(web, "mailer_queue_messages", queue="digest", state="waiting") == 0
    finally:
        # The workers at once (a graceful dramatiq stop costs seconds; the test has its
        # figures), the web server gracefully.
        os.killpg(procs[0].pid, signal.SIGKILL)
        procs[1].terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        worker_log.close()
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines() if line.startswith("{")]
    assert any("ready for action" in ln["message"] for ln in lines)  # worker processes log JSON
