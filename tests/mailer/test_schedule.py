"""The scheduler (mailer/schedule.py, mailer/leadership.py, scheduler.py): the calendar across
months and clock changes, one leader among several schedulers, runs fired once, missed runs
caught up or recorded, and `mailer schedule show`.

Every test drives the scheduler with its own clock (``Scheduler.step(now)``); none sleeps.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from mailer import runtime
from mailer.actors.digest import run_period, start_edition
from mailer.boot import boot
from mailer.content.models import Item, Partner, Topic
from mailer.delivery.models import Delivery
from mailer.digest.models import Edition
from mailer.leadership import FileLeadership, PgLeadership, RedisLeadership, leadership_for
from mailer.schedule import Job, Scheduler, jobs, parse_cron, status
from mailer.schedule_runs import ScheduleRun
from subscribers.models import Subscriber
from tests.conftest import REDIS_URL, need

LONDON = ZoneInfo("Europe/London")
UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[2]
# 1 December 2026, the first Tuesday, 09:00 in London (GMT)
DEC_RUN = datetime(2026, 12, 1, 9, 0, tzinfo=LONDON)


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def job(settings, job_id: str) -> Job:
    return next(j for j in jobs(settings) if j.id == job_id)


class Sent(list):
    """What a scheduler enqueued: ``(actor, args)`` per message (for tests about *when* it
    fires; the tests about what a run does use the real queue)."""

    def __call__(self, actor: str, args: tuple) -> None:
        self.append((actor, args))


def scheduler(rt, settings, lock, job_ids, send=None, grace_hours=None):
    settings = dataclasses.replace(settings, schedule_grace_hours=grace_hours or settings.schedule_grace_hours)
    table = [j for j in jobs(settings) if j.id in job_ids]
    kwargs = {"send": send} if send is not None else {}
    return Scheduler(rt.db, table, lock, grace=timedelta(hours=settings.schedule_grace_hours), **kwargs)


def runs(rt, job_id=None) -> list[ScheduleRun]:
    with rt.db.transaction() as s:
        q = select(ScheduleRun).order_by(ScheduleRun.scheduled_for, ScheduleRun.id)
        if job_id:
            q = q.where(ScheduleRun.job == job_id)
        return list(s.scalars(q))


# --- the calendar ---------------------------------------------------------------------


def test_monthly_digest_is_the_first_tuesday_at_nine_london_time_all_year(settings):
    digest = job(settings, "monthly-digest")
    fires = digest.upcoming(london(2026, 1, 1), 15)
    assert [f.astimezone(LONDON).strftime("%Y-%m-%d %H:%M") for f in fires[:4]] == [
        "2026-01-06 09:00",
        "2026-02-03 09:00",
        "2026-03-03 09:00",
        "2026-04-07 09:00",
    ]
    for f in fires:
        local = f.astimezone(LONDON)
        assert (local.weekday(), local.hour, local.minute) == (1, 9, 0) and local.day <= 7
        summer = 4 <= local.month <= 10  # BST from the last Sunday of March to that of October
        assert f.utcoffset() == timedelta(hours=1 if summer else 0), f
    assert len({f.strftime("%Y-%m") for f in fires}) == 15  # one a month, none skipped


def test_the_group_daily_digest_fires_each_morning_for_the_day_before(settings):
    settings = dataclasses.replace(settings, groups=dataclasses.replace(settings.groups, digest_hour=6))
    daily = job(settings, "group-daily-digest")
    fires = daily.upcoming(london(2026, 10, 24), 3)  # across the clocks going back
    assert [f.astimezone(LONDON).strftime("%Y-%m-%d %H:%M") for f in fires] == [
        "2026-10-24 06:00",
        "2026-10-25 06:00",
        "2026-10-26 06:00",
    ]
    assert [daily.args(f, 1) for f in fires] == [("2026-10-23",), ("2026-10-24",), ("2026-10-25",)]
    assert daily.each  # every missed day inside the grace window is its own digest


def test_clock_changes_neither_skip_nor_repeat_a_run(settings):
    """Europe/London: 29 March 2026 01:00 GMT -> 02:00 BST; 25 October 2026 02:00 BST -> 01:00 GMT."""
    nightly = Job("x", parse_cron("hour=1,minute=30", "Europe/London"), "m:a", "")
    march = nightly.upcoming(london(2026, 3, 28, 12), 3)
    # 01:30 does not exist on the 29th: it runs once, at 01:30 UTC (02:30 BST), a day after the last
    assert [f.astimezone(UTC) for f in march] == [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]
    october = nightly.upcoming(london(2026, 10, 24, 12), 3)
    # 01:30 happens twice on the 25th: it runs at the first only
    assert [f.astimezone(UTC) for f in october] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    # an hourly job keeps running every hour of real time through both changes
    hourly = Job("h", parse_cron("minute=30", "Europe/London"), "m:a", "")
    for start in (london(2026, 3, 29, 0), london(2026, 10, 25, 0)):
        fires = [f.astimezone(UTC) for f in hourly.upcoming(start, 4)]  # same-zone subtraction is by the wall clock
        assert [b - a for a, b in zip(fires, fires[1:], strict=False)] == [timedelta(hours=1)] * 3
    # and the digest at 09:00 stays at 09:00 on the clock when the clocks change under it
    digest = Job("d", parse_cron("day=last sun,hour=9,minute=0", "Europe/London"), "m:a", "")
    assert [
        f.astimezone(LONDON).strftime("%m-%d %H:%M %Z")
        for f in digest.upcoming(london(2026, 3, 1), 8)
        if f.month in (3, 10)
    ] == ["03-29 09:00 BST", "10-25 09:00 GMT"]


def test_a_scheduler_running_through_the_autumn_night_fires_a_nightly_job_once(rt, settings, tmp_path):
    nightly = dataclasses.replace(settings, digest_schedule="hour=1,minute=30")
    sent = Sent()
    s = scheduler(rt, nightly, FileLeadership(tmp_path / "lock"), {"monthly-digest"}, send=sent)
    now = london(2026, 10, 24, 23, 0).astimezone(UTC)
    while now < datetime(2026, 10, 25, 4, 0, tzinfo=UTC):  # 01:30 BST and 01:30 GMT both pass
        s.step(now)
        now += timedelta(minutes=7)
    assert sent == [("mailer.actors.digest:run_period", ("2026-10", runs(rt, "monthly-digest")[-1].id))]


def test_feed_polling_enqueues_the_actor_every_feed_poll_minutes(rt, settings, tmp_path, queue):
    """The job enqueues the real poll_feeds actor each hour, and the actor polls: the
    partner's feed (a closed port on loopback) is checked and its error recorded."""
    with rt.db.transaction() as s:
        s.add(Partner(slug="naz", name="Naz", active=True, feed_url="http://127.0.0.1:9/feed.xml"))
    hourly = dataclasses.replace(settings, feed_poll_minutes=60, feed_allow_private=True, feed_timeout=2.0)
    boot(hourly, transport=rt.transport)
    s = scheduler(rt, hourly, FileLeadership(tmp_path / "lock"), {"feed-poll"})
    fired = [s.step(datetime(2026, 11, 30, 9, 40, tzinfo=UTC))]
    fired += [s.step(datetime(2026, 11, 30, h, m, 5, tzinfo=UTC)) for h, m in ((10, 0), (10, 30), (10, 59), (11, 0))]
    queue()
    assert fired == [
        [],
        [("feed-poll", datetime(2026, 11, 30, 10, 0, tzinfo=UTC))],
        [],
        [],
        [("feed-poll", datetime(2026, 11, 30, 11, 0, tzinfo=UTC))],
    ]
    polls = [r for r in runs(rt, "feed-poll") if r.outcome != "registered"]
    assert [r.outcome for r in polls] == ["failed", "failed"]
    assert all("errors: naz" in r.detail and r.finished_at for r in polls)
    with rt.db.transaction() as db:
        naz = db.scalar(select(Partner).where(Partner.slug == "naz"))
        assert naz.feed_checked_at is not None and naz.feed_error


# --- never twice ------------------------------------------------------------------------


@pytest.fixture
def november(rt):
    """Three readers of heart news and one approved November item: December's digest
    carries it (an edition takes the month before's items nobody has carried yet)."""
    with rt.db.transaction() as s:
        heart = Topic(slug="heart", name="Heart health")
        bhf = Partner(slug="bhf", name="British Heart Foundation")
        s.add_all([heart, bhf])
        s.flush()
        s.add(
            Item(
                partner_id=bhf.id,
                kind="news",
                title="Screening",
                summary="More screening.",
                link="https://example.org/s",
                status="approved",
                dated=date(2026, 11, 20),
                topics=[heart],
            )
        )
        for email in ("a@example.org", "b@example.org", "c@example.org"):
            s.add(Subscriber(email=email, status="confirmed", topics=[heart]))


def test_the_months_edition_goes_out_once_however_often_it_is_fired(rt, transport, queue, tmp_path, november):
    """Two schedulers that both believe they lead (a split brain), a restarted one, a retried
    job message and an operator's hand send: each reader gets December's digest once."""
    first = scheduler(rt, rt.settings, FileLeadership(tmp_path / "a.lock", "host-a:1"), {"monthly-digest"})
    second = scheduler(rt, rt.settings, FileLeadership(tmp_path / "b.lock", "host-b:2"), {"monthly-digest"})
    before = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert first.step(before) == [] and second.step(before) == []
    at = DEC_RUN.astimezone(UTC) + timedelta(seconds=3)
    fired = first.step(at) + second.step(at)
    assert fired == [("monthly-digest", DEC_RUN)]
    restarted = scheduler(rt, rt.settings, FileLeadership(tmp_path / "c.lock"), {"monthly-digest"})
    assert restarted.step(at + timedelta(minutes=5)) == []
    queue()
    runtime.current().queue.send(run_period, "2026-12", None)  # the job's message delivered again
    with rt.db.transaction() as s:
        edition_id = s.scalar(select(Edition.id).where(Edition.period == "2026-12"))
    runtime.current().queue.send(start_edition, edition_id)  # `mailer edition send 2026-12`
    queue()
    assert sorted(m.recipient for m in transport.messages) == ["a@example.org", "b@example.org", "c@example.org"]
    (run,) = [r for r in runs(rt, "monthly-digest") if r.outcome != "registered"]
    assert (run.outcome, run.leader, run.detail) == ("sending", "host-a:1", "the 2026-12 edition is sending")
    with rt.db.transaction() as s:
        assert s.get(Edition, edition_id).status == "sent"
        assert len(s.scalars(select(Delivery)).all()) == 3


def test_an_edition_sent_by_hand_first_is_not_sent_again_by_the_job(rt, transport, queue, tmp_path, november):
    from mailer.digest.editions import build_edition

    with rt.db.transaction() as s:
        edition_id = build_edition(s, "2026-12").id
    runtime.current().queue.send(start_edition, edition_id)
    queue()
    with rt.db.transaction() as s:  # a new reader since: the job must not send them last month's
        s.add(
            Subscriber(
                email="late@example.org",
                status="confirmed",
                topics=[s.scalar(select(Topic).where(Topic.slug == "heart"))],
            )
        )
    s = scheduler(rt, rt.settings, FileLeadership(tmp_path / "lock"), {"monthly-digest"})
    s.step(datetime(2026, 11, 30, tzinfo=UTC))
    assert s.step(DEC_RUN.astimezone(UTC) + timedelta(seconds=1)) == [("monthly-digest", DEC_RUN)]
    queue()
    assert len(transport.messages) == 3 and "late@example.org" not in {m.recipient for m in transport.messages}
    assert runs(rt, "monthly-digest")[-1].outcome == "skipped"
    assert "is sent" in runs(rt, "monthly-digest")[-1].detail


def test_a_draft_an_editor_is_preparing_in_the_console_is_left_to_them(rt, transport, queue, tmp_path, november):
    """Separation of duties: the job neither rebuilds nor sends, unapproved, a draft a person
    changed in the console (mailer.staff.approval)."""
    from mailer.digest.editions import build_edition

    with rt.db.transaction() as s:
        edition = build_edition(s, "2026-12")
        edition.subject, edition.changed_by_id = "Being written", 1
    runtime.current().queue.send(run_period, "2026-12", None)
    queue()
    assert transport.messages == []
    with rt.db.transaction() as s:
        edition = s.scalar(select(Edition).where(Edition.period == "2026-12"))
        assert (edition.status, edition.subject) == ("draft", "Being written")
        assert s.scalars(select(Delivery)).all() == []


def test_an_empty_month_sends_nothing_and_tells_the_editors(rt, settings, transport, queue, tmp_path):
    with rt.db.transaction() as s:
        s.add(Subscriber(email="a@example.org", status="confirmed"))
    boot(dataclasses.replace(settings, reply_to="Editors <editors@ertg.example.org>"), transport=transport)
    s = scheduler(rt, settings, FileLeadership(tmp_path / "lock"), {"monthly-digest"})
    s.step(datetime(2026, 11, 30, tzinfo=UTC))
    s.step(DEC_RUN.astimezone(UTC))
    queue()
    runtime.current().queue.send(run_period, "2026-12", runs(rt, "monthly-digest")[-1].id)  # a retry tells nobody again
    queue()
    assert [m.recipient for m in transport.messages] == ["editors@ertg.example.org"]
    assert b"The 2026-12 edition was not sent: it has no items" in transport.messages[0].data
    run = runs(rt, "monthly-digest")[-1]
    assert run.outcome == "empty" and "no approved items" in run.detail


# --- never silently missed --------------------------------------------------------------


def test_a_run_missed_while_no_scheduler_ran_runs_late_within_the_grace_window(rt, settings, tmp_path):
    sent = Sent()
    lock = tmp_path / "lock"
    table = {"monthly-digest", "feed-poll"}
    gone = FileLeadership(lock)
    scheduler(rt, settings, gone, table, send=sent).step(datetime(2026, 11, 30, 20, tzinfo=UTC))
    gone.release()  # every scheduler down from 20:00 until 23 hours after the digest was due
    back = DEC_RUN.astimezone(UTC) + timedelta(hours=23)
    fired = scheduler(rt, settings, FileLeadership(lock), table, send=sent).step(back)
    assert fired == [
        ("monthly-digest", DEC_RUN),  # the month's digest, late
        ("feed-poll", datetime(2026, 12, 2, 8, 0, tzinfo=UTC)),
    ]  # 36 missed polls: one poll now
    assert sent[0] == ("mailer.actors.digest:run_period", ("2026-12", runs(rt, "monthly-digest")[-1].id))
    assert runs(rt, "monthly-digest")[-1].detail == "1380 min late"
    assert runs(rt, "feed-poll")[-1].detail == "covers 35 earlier run(s) missed"
    assert [r for r in runs(rt) if r.outcome == "missed"] == []  # the poll now covers the 11 older ones


def test_a_run_missed_beyond_the_grace_window_is_recorded_and_shown_not_run(app, rt, settings, tmp_path):
    from mailer.cli import main

    sent = Sent()
    lock = tmp_path / "lock"
    gone = FileLeadership(lock)
    scheduler(rt, settings, gone, {"monthly-digest"}, send=sent).step(datetime(2026, 11, 30, 20, tzinfo=UTC))
    gone.release()
    back = DEC_RUN.astimezone(UTC) + timedelta(hours=25)
    # Before any scheduler comes back, the status already shows the miss.
    (digest,) = [j for j in status(settings, rt.db, now=back) if j.job.id == "monthly-digest"]
    assert [(m.scheduled_for, m.detail) for m in digest.missed] == [
        (DEC_RUN, "not yet recorded: no scheduler has led since")
    ]
    returned = FileLeadership(lock)
    fired = scheduler(rt, settings, returned, {"monthly-digest"}, send=sent).step(back)
    returned.release()
    assert fired == [] and sent == []
    (missed,) = [r for r in runs(rt) if r.outcome == "missed"]
    assert missed.scheduled_for.astimezone(UTC) == DEC_RUN.astimezone(UTC)
    assert "24 h" in missed.detail
    # coming back again changes nothing: the miss stays recorded once and is never run
    assert (
        scheduler(rt, settings, FileLeadership(lock), {"monthly-digest"}, send=sent).step(back + timedelta(hours=1))
        == []
    )
    assert len([r for r in runs(rt) if r.outcome == "missed"]) == 1
    shown = app.test_cli_runner().invoke(main, ["schedule", "show"])
    assert shown.exit_code == 0, shown.output
    assert "MISSED   2026-12-01 09:00 GMT: no scheduler ran within 24 h of this time" in shown.output


def test_schedule_show_lists_jobs_next_runs_last_outcome_and_the_leader(app, rt, settings):
    from mailer.cli import main

    lock = leadership_for(settings, me="web-1:4242")
    try:
        assert lock.acquire()
        s = Scheduler(rt.db, jobs(settings), lock, grace=timedelta(hours=24), send=Sent())
        s.step(datetime(2026, 11, 30, 12, tzinfo=UTC))
        s.step(datetime(2026, 11, 30, 12, 1, 5, tzinfo=UTC))
        out = app.test_cli_runner().invoke(main, ["schedule", "show"])
    finally:
        lock.close()
    assert out.exit_code == 0, out.output
    text_ = out.output
    assert text_.startswith("Leader: web-1:4242  [")
    for job_id in ("monthly-digest", "scheduled-editions", "feed-poll", "purge-unconfirmed", "delivery-sweep"):
        assert f"\n{job_id}: " in text_
    assert "bounces" not in text_  # no BOUNCE_SOURCE
    block = text_.split("\nscheduled-editions: ")[1].split("\n\n")[0]
    assert "last     2026-11-30 12:01 GMT: enqueued, by web-1:4242" in block
    nxt = [line for line in block.splitlines() if line.startswith("  next")][0]
    assert nxt.count("GMT") + nxt.count("BST") == 3
    assert "last     never run" in text_.split("\nmonthly-digest: ")[1].split("\n\n")[0]
    after = app.test_cli_runner().invoke(main, ["schedule", "show"]).output
    assert after.startswith("Leader: none (no scheduler is running)")


# --- one leader -------------------------------------------------------------------------


def _pg(rt):
    assert rt.db.engine.dialect.name == "postgresql"  # the tests using it are marked so
    return rt.settings.database_url


def _child(code: str, *args: str) -> subprocess.Popen:
    """A separate process that takes the lock and then just holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout.readline().strip() == "leading"
    return proc


def _until(check, seconds: float) -> float:
    """How long ``check`` took to come true (fails after ``seconds``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "the standby did not take over in time"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.dialects("postgresql")
def test_two_schedulers_on_one_postgresql_database_only_the_leader_fires(rt, settings):
    url = _pg(rt)
    sent = Sent()
    a_lock, b_lock = PgLeadership(url, "host-a:1"), PgLeadership(url, "host-b:2")
    try:
        a = scheduler(rt, settings, a_lock, {"monthly-digest", "delivery-sweep"}, send=sent)
        b = scheduler(rt, settings, b_lock, {"monthly-digest", "delivery-sweep"}, send=sent)
        start = datetime(2026, 11, 30, 20, tzinfo=UTC)
        a.step(start), b.step(start)
        assert (a.leading, b.leading) == (True, False) and b_lock.holder() == "host-a:1"
        at = DEC_RUN.astimezone(UTC) + timedelta(seconds=2)
        assert a.step(at) == [("monthly-digest", DEC_RUN), ("delivery-sweep", datetime(2026, 12, 1, 9, 0, tzinfo=UTC))]
        assert b.step(at) == []
        # The database ends the leader's session (as when its machine vanished): the lock goes with it.
        with rt.db.engine.connect() as conn:
            pid = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": "mailer-scheduler host-a:1"}
            ).scalar()
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        later = at + timedelta(minutes=5)
        assert a.step(later) == [] and not a.leading  # it notices and fires nothing
        assert b.step(later) == [("delivery-sweep", datetime(2026, 12, 1, 9, 5, tzinfo=UTC))]
        assert b_lock.holder() == "host-b:2"
        assert a.step(later + timedelta(minutes=5)) == []  # the old leader is a standby now
        assert [(r.job, r.leader) for r in runs(rt) if r.outcome == "enqueued"] == [
            ("monthly-digest", "host-a:1"),
            ("delivery-sweep", "host-a:1"),
            ("delivery-sweep", "host-b:2"),
        ]
        assert len(sent) == 3
    finally:
        a_lock.close(), b_lock.close()


@pytest.mark.dialects("postgresql")
def test_a_standby_takes_the_postgresql_lock_as_soon_as_the_leader_process_dies(rt):
    url = _pg(rt)
    child = _child(
        "import sys, time; from mailer.leadership import PgLeadership\n"
        "l = PgLeadership(sys.argv[1], 'child:9'); assert l.acquire(); print('leading', flush=True)\n"
        "time.sleep(120)",
        url,
    )
    standby = PgLeadership(url, "standby:1")
    try:
        assert not standby.acquire() and standby.holder() == "child:9"
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert _until(standby.acquire, 5) < 5  # the server ends the dead client's session at once
        assert standby.hold() and standby.holder() == "standby:1"
    finally:
        child.kill(), standby.close()


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(need(REDIS_URL, "TEST_REDIS_URL"))
    client.delete("mailer:test:leader")
    yield client
    client.delete("mailer:test:leader")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_two_schedulers_with_a_redis_lock_only_the_leader_fires_and_renews(rt, settings, redis_client):
    clock, sent = Clock(), Sent()
    a_lock = RedisLeadership(redis_client, "host-a:1", key="mailer:test:leader", clock=clock)
    b_lock = RedisLeadership(redis_client, "host-b:2", key="mailer:test:leader", clock=clock)
    a = scheduler(rt, settings, a_lock, {"delivery-sweep"}, send=sent)
    b = scheduler(rt, settings, b_lock, {"delivery-sweep"}, send=sent)
    start = datetime(2026, 11, 30, 20, tzinfo=UTC)
    a.step(start), b.step(start)
    assert b_lock.holder() == "host-a:1" and 29_000 < redis_client.pttl("mailer:test:leader") <= 30_000
    at = start + timedelta(minutes=5, seconds=1)
    assert a.step(at) == [("delivery-sweep", start + timedelta(minutes=5))] and b.step(at) == []
    redis_client.pexpire("mailer:test:leader", 12_000)
    clock.t += 10  # the renewal is due: the leader extends its lease to the whole TTL again
    a.step(at + timedelta(seconds=10))
    assert redis_client.pttl("mailer:test:leader") > 29_000
    # The lease expired while the leader hung, and the standby took it: the old leader steps down.
    redis_client.delete("mailer:test:leader")
    assert b.step(at + timedelta(minutes=5)) == [("delivery-sweep", start + timedelta(minutes=10))]
    clock.t += 10
    assert a.step(at + timedelta(minutes=5)) == [] and not a.leading
    assert b_lock.holder() == "host-b:2"
    assert [args for _, args in sent] == [(), ()]


def test_a_standby_takes_the_redis_lock_when_a_dead_leaders_lease_runs_out(redis_client):
    url = need(REDIS_URL, "TEST_REDIS_URL")
    child = _child(
        "import sys, time, redis; from mailer.leadership import RedisLeadership\n"
        "l = RedisLeadership(redis.Redis.from_url(sys.argv[1]), 'child:9', key='mailer:test:leader',"
        " ttl_seconds=0.6, renew_seconds=0.2); assert l.acquire(); print('leading', flush=True)\n"
        "time.sleep(120)",
        url,
    )
    standby = RedisLeadership(redis_client, "standby:1", key="mailer:test:leader")
    try:
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert not standby.acquire() and standby.holder() == "child:9"  # its lease still runs
        assert _until(standby.acquire, 3) <= 0.6 + 0.3  # within the TTL (and one try)
        assert standby.holder() == "standby:1"
    finally:
        child.kill(), standby.close()


def test_embedded_mode_uses_a_file_lock_that_one_process_holds(tmp_path):
    first, second = FileLeadership(tmp_path / "s.lock", "a:1"), FileLeadership(tmp_path / "s.lock", "b:2")
    assert first.acquire() and not second.acquire() and second.holder() == "a:1"
    first.release()
    assert second.holder() is None and second.acquire() and first.holder() == "b:2"
    second.release()


def test_bounce_job_applies_new_reports_in_the_maildir_once(rt, settings, tmp_path, queue):
    import mailbox

    from tests.mailer.delivery.test_bounces import dsn

    box = mailbox.Maildir(str(tmp_path / "bounces"), create=True)
    box.add(dsn("bounces+1-forged@ertg.example.org", "a@example.org", "failed", "5.1.1"))
    with_source = dataclasses.replace(settings, bounce_source=tmp_path / "bounces")
    boot(with_source, transport=rt.transport)
    s = scheduler(rt, with_source, FileLeadership(tmp_path / "lock"), {"bounces"})
    s.step(datetime(2026, 11, 30, 12, 1, tzinfo=UTC))
    assert s.step(datetime(2026, 11, 30, 12, 10, 1, tzinfo=UTC)) == [
        ("bounces", datetime(2026, 11, 30, 12, 10, tzinfo=UTC))
    ]
    queue()
    assert s.step(datetime(2026, 11, 30, 12, 20, 1, tzinfo=UTC)) == [
        ("bounces", datetime(2026, 11, 30, 12, 20, tzinfo=UTC))
    ]
    queue()
    first, second = [r for r in runs(rt, "bounces") if r.outcome != "registered"]
    # A forged return path changes nothing, but the report is read, and read once.
    assert (first.outcome, first.detail) == ("done", "1 message(s): hard 0, soft 0, complaints 0, unmatched 1")
    assert second.detail.startswith("0 message(s)")
    (key,) = list(box.keys())
    assert box.get_message(key).get_subdir() == "cur" and "S" in box.get_message(key).get_flags()


def test_a_run_the_queue_refused_is_tried_again_not_lost(rt, settings, tmp_path):
    class QueueDownOnce(Sent):
        def __call__(self, actor, args):
            if not hasattr(self, "failed"):
                self.failed = True
                raise ConnectionError("Redis is down")
            super().__call__(actor, args)

    sent = QueueDownOnce()
    s = scheduler(rt, settings, FileLeadership(tmp_path / "lock"), {"monthly-digest"}, send=sent)
    s.step(datetime(2026, 11, 30, tzinfo=UTC))
    at = DEC_RUN.astimezone(UTC)
    assert s.step(at) == [] and [r.outcome for r in runs(rt, "monthly-digest")] == ["registered"]
    assert s.step(at + timedelta(seconds=2)) == [("monthly-digest", DEC_RUN)]
    assert sent == [("mailer.actors.digest:run_period", ("2026-12", runs(rt, "monthly-digest")[-1].id))]
