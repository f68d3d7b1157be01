"""The clock: which jobs run when, who fires them, and what happens to runs nobody fired.

The scheduler only enqueues: each job sends one actor message; building, rendering and
sending happen in workers. APScheduler's triggers compute the calendar (in
``SCHEDULE_TIMEZONE``); the loop here decides what fires, so that

- **exactly one process fires**: only the leader (:mod:`mailer.leadership`) fires, and every
  run is first recorded in ``schedule_runs``, unique per job and scheduled time, so even a
  second leader, a second firing or a restart cannot enqueue a run twice;
- **nothing is missed in silence**: on taking the lead, and on each step, a job's due runs
  are those of its trigger after the latest recorded one. A run at most
  ``SCHEDULE_GRACE_HOURS`` late is fired (late); older ones are recorded as ``missed`` and
  shown by ``mailer schedule show``. The monthly digest catches up each missed period on its
  own; the other jobs, which do the same work each time, fire once for all their missed runs.

Importing this module has no side effects: actors are imported when a job first fires.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailer import schedule_runs as runs
from mailer.db import Database, utcnow
from mailer.leadership import Leadership
from mailer.settings import Settings

log = logging.getLogger(__name__)

# Interval jobs count from this instant, so every process computes the same run times.
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
TICK = timedelta(microseconds=1)
CATCH_UP_SCAN = 5000  # fire times examined per job per step: bounds the work after a long outage


def parse_cron(spec: str, tz: str) -> CronTrigger:
    """``"day=1st tue,hour=9,minute=0"`` -> a CronTrigger in ``tz``."""
    fields = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip()
    return CronTrigger(timezone=ZoneInfo(tz), **fields)


@dataclass(frozen=True)
class Job:
    """One row of the job table. ``actor`` is ``"module:name"``; ``args`` builds the message's
    arguments from the scheduled time and the run's id. ``each`` jobs fire every missed
    run inside the grace window (each is different work); the others fire once for all."""

    id: str
    trigger: CronTrigger | IntervalTrigger
    actor: str
    describe: str
    args: Callable[[datetime, int], tuple] = lambda when, run_id: ()
    each: bool = False

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``.

        A fixed-time cron job (its hour field not ``*``) fires once on the night the clocks
        go back, though its wall-clock time happens twice (APScheduler would fire both)."""
        when = after
        while True:
            # Step in UTC: aware arithmetic in a local zone drops ``fold`` and walks back
            # into the first of the two 01:30s. With no previous time, interval triggers
            # count from their start date, so every process agrees on the run times.
            when = self.trigger.get_next_fire_time(None, when.astimezone(timezone.utc) + TICK)
            if when is None or not self._repeat(when):
                return when

    def _repeat(self, when: datetime) -> bool:
        if not isinstance(self.trigger, CronTrigger) or not getattr(when, "fold", 0):
            return False
        hour = next(f for f in self.trigger.fields if f.name == "hour")
        first = when.replace(fold=0)
        return not hour.is_default and str(hour) != "*" and first.utcoffset() != when.utcoffset()

    def upcoming(self, now: datetime, n: int = 3) -> list[datetime]:
        out, when = [], now
        while len(out) < n and (when := self.next_after(when)) is not None:
            out.append(when)
        return out


def _period(tz: str) -> Callable[[datetime, int], tuple]:
    return lambda when, run_id: (when.astimezone(ZoneInfo(tz)).strftime("%Y-%m"), run_id)


def jobs(settings: Settings) -> list[Job]:
    """The job table for ``settings``."""
    tz = settings.schedule_timezone
    zone = ZoneInfo(tz)
    table = [
        Job(
            "monthly-digest",
            parse_cron(settings.digest_schedule, tz),
            "mailer.actors.digest:run_period",
            f"build and send the month's edition ({settings.digest_schedule})",
            args=_period(tz),
            each=True,
        ),
        Job(
            "scheduled-editions",
            CronTrigger(minute="*", timezone=zone),
            "mailer.actors.digest:send_due_editions",
            "start editions an editor scheduled (every minute)",
        ),
        Job(
            "feed-poll",
            IntervalTrigger(minutes=settings.feed_poll_minutes, start_date=EPOCH, timezone=zone),
            "mailer.actors.scheduled:poll_feeds",
            f"poll partner feeds (every {settings.feed_poll_minutes} min)",
            args=lambda when, run_id: (run_id,),
        ),
        Job(
            "purge-unconfirmed",
            CronTrigger(hour=3, minute=30, timezone=zone),
            "mailer.actors.housekeeping:purge_unconfirmed_job",
            "delete expired subscription requests (daily 03:30)",
        ),
        Job(
            "group-held-expiry",
            IntervalTrigger(hours=1, start_date=EPOCH, timezone=zone),
            "mailer.actors.groups:expire_held_posts",
            f"expire group posts held over {settings.groups.hold_days} days, telling their senders (hourly)",
        ),
        Job(
            "group-daily-digest",
            CronTrigger(hour=settings.groups.digest_hour, minute=0, timezone=zone),
            "mailer.actors.groups:send_daily_digests",
            f"send each group's daily digest of the day before (daily {settings.groups.digest_hour:02d}:00)",
            args=lambda when, run_id: ((when.astimezone(zone).date() - timedelta(days=1)).isoformat(),),
            each=True,
        ),
        Job(
            "delivery-sweep",
            IntervalTrigger(minutes=5, start_date=EPOCH, timezone=zone),
            "mailer.actors.digest:sweep",
            "watch every sending edition (every 5 min)",
        ),
    ]
    if settings.bounce_source:
        table.append(
            Job(
                "bounces",
                IntervalTrigger(minutes=10, start_date=EPOCH, timezone=zone),
                "mailer.actors.scheduled:process_bounces",
                f"process bounce reports in {settings.bounce_source} (every 10 min)",
                args=lambda when, run_id: (run_id,),
            )
        )
    return table


def send_actor(path: str, args: tuple) -> None:
    """Enqueue the job ``module:name`` with ``args`` on this process's queue. Found by
    name when a job fires, so the job table stays plain data."""
    from mailer.runtime import current  # the assembly layer sits above this edge's table

    module, _, name = path.partition(":")
    current().queue.send(getattr(importlib.import_module(module), name), *args)


@dataclass
class Due:
    fire: list[datetime] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)
    more_missed: bool = False
    covered: int = 0  # earlier runs the one to fire stands in for


def due_runs(job: Job, last: datetime, now: datetime, grace: timedelta) -> Due:
    """What ``job`` owes between its latest recorded time ``last`` and ``now``: run times to
    fire (at most ``grace`` late) and run times missed beyond the grace window. A job that
    is not ``each`` fires only its latest due run, which covers every earlier one, missed
    or not; its misses are recorded only when nothing is left to fire."""
    due, when = Due(), last
    for _ in range(CATCH_UP_SCAN):
        when = job.next_after(when)
        if when is None or when > now:
            break
        (due.fire if now - when <= grace else due.missed).append(when)
    else:
        due.more_missed = True
    if not job.each and due.fire:
        # One run does the work of all: it covers the older misses too.
        due.covered = len(due.fire) - 1 + len(due.missed)
        due.fire, due.missed = due.fire[-1:], []
    return due


class Scheduler:
    """Fires ``jobs`` while ``leadership`` says this process leads. :meth:`step` is one turn
    of the loop at a given time (tests drive it with their own clock); :meth:`run` loops."""

    def __init__(
        self,
        db: Database,
        jobs: list[Job],
        leadership: Leadership,
        *,
        grace: timedelta,
        send: Callable[[str, tuple], None] = send_actor,
        poll_seconds: float = 2.0,
    ):
        self.db, self.jobs, self.leadership, self.grace = db, jobs, leadership, grace
        self.send, self.poll_seconds = send, poll_seconds
        self.leading = False
        self.last: dict[str, datetime] = {}

    @property
    def me(self) -> str:
        return self.leadership.me

    def step(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Take or keep the lead, then fire what is due. Returns the runs fired."""
        now = now or utcnow()
        if not self.leading:
            if not self.leadership.acquire():
                return []
            try:
                self._load(now)
            except Exception:
                self.leadership.release()  # let a standby that can reach the database lead
                raise
            self.leading = True
            log.info("scheduler %s leads (%s)", self.me, self.leadership.name)
        elif not self._still_leading():  # also renews a lease that needs it
            return []
        fired = []
        for job in self.jobs:
            due = due_runs(job, self.last[job.id], now, self.grace)
            if due.missed:
                self._record_missed(job, due, now)
            for when in due.fire:
                if self._fire(job, when, now, due.covered):
                    fired.append((job.id, when))
        return fired

    def _still_leading(self) -> bool:
        if self.leadership.hold():
            return True
        self.leading = False
        log.warning("scheduler %s lost the lead", self.me)
        return False

    def _load(self, now: datetime) -> None:
        """Each job's latest recorded time; a job never seen before is registered now, so
        its runs are counted from this moment on (a new install owes nothing)."""
        with self.db.transaction() as s:
            self.last = runs.last_scheduled(s)
            for job in self.jobs:
                if job.id not in self.last:
                    runs.claim(s, job.id, now, outcome=runs.REGISTERED, leader=self.me, now=now)
                    self.last[job.id] = now

    def _record_missed(self, job: Job, due: Due, now: datetime) -> None:
        with self.db.transaction() as s:
            if job.each:
                for when in due.missed:
                    runs.claim(
                        s,
                        job.id,
                        when,
                        outcome=runs.MISSED,
                        leader=self.me,
                        now=now,
                        detail=f"no scheduler ran within {self._grace_text()} of this time",
                    )
            else:
                n = f"{len(due.missed)}{'+' if due.more_missed else ''}"
                runs.claim(
                    s,
                    job.id,
                    due.missed[-1],
                    outcome=runs.MISSED,
                    leader=self.me,
                    now=now,
                    detail=f"{n} run(s) from {due.missed[0]:%Y-%m-%d %H:%M} UTC on were past "
                    f"the {self._grace_text()} grace window",
                )
        for when in due.missed:
            log.error(
                "job %s: the run due %s was missed (no scheduler ran within %s); not run",
                job.id,
                when.isoformat(),
                self._grace_text(),
            )
        self.last[job.id] = max(self.last[job.id], due.missed[-1])

    def _fire(self, job: Job, when: datetime, now: datetime, covered: int = 0) -> bool:
        """Record, then enqueue, one run. False if the run was already recorded (by this or
        another scheduler): then nothing is enqueued."""
        late = now - when
        notes = [f"{int(late.total_seconds() // 60)} min late"] if late > timedelta(minutes=1) else []
        notes += [f"covers {covered} earlier run(s) missed"] if covered else []
        detail = "; ".join(notes)
        with self.db.transaction() as s:
            run = runs.claim(s, job.id, when, outcome=runs.ENQUEUED, leader=self.me, now=now, detail=detail)
            if run is not None:
                runs.prune(s, job.id, now)
        if run is None:
            self.last[job.id] = max(self.last[job.id], when)
            log.info("job %s for %s was already fired elsewhere", job.id, when.isoformat())
            return False
        try:
            self.send(job.actor, job.args(when, run.id))
        except Exception:
            # The queue is down: take the record back, so the next step (this leader's or
            # a successor's) tries again while the run is inside the grace window.
            with self.db.transaction() as s:
                runs.release(s, run.id)
            log.exception("job %s: could not enqueue the run due %s; trying again", job.id, when.isoformat())
            return False
        self.last[job.id] = max(self.last[job.id], when)
        log.info("job %s fired for %s%s", job.id, when.isoformat(), f" ({detail})" if detail else "")
        return True

    def _grace_text(self) -> str:
        return f"{self.grace.total_seconds() / 3600:g} h"

    def run(self, stop: threading.Event) -> None:
        """Step every ``poll_seconds`` until ``stop`` is set; let go of the lead on the way out."""
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - a database hiccup must not end the clock
                    log.exception("scheduler step failed; trying again")
                    self.leading = self.leading and self.leadership.hold()
                stop.wait(self.poll_seconds)
        finally:
            self.leadership.release()


def build_scheduler(settings: Settings, db: Database, leadership: Leadership, **kwargs) -> Scheduler:
    return Scheduler(db, jobs(settings), leadership, grace=timedelta(hours=settings.schedule_grace_hours), **kwargs)


# --- what `mailer schedule show` prints ---------------------------------------------------


@dataclass
class JobStatus:
    job: Job
    upcoming: list[datetime]
    last: runs.ScheduleRun | None
    missed: list[runs.ScheduleRun]


def status(settings: Settings, db: Database, now: datetime | None = None) -> list[JobStatus]:
    """Every job with its next three runs (in the configured zone), its latest run and its
    recorded misses, plus misses not yet recorded (no scheduler has led since)."""
    now, zone = now or utcnow(), ZoneInfo(settings.schedule_timezone)
    grace = timedelta(hours=settings.schedule_grace_hours)
    out = []
    with db.transaction() as s:
        latest = runs.last_scheduled(s)
        for job in jobs(settings):
            missed = runs.misses(s, job.id)
            if job.id in latest:
                # Past the grace window and no leader to record it yet: show it all the same.
                pending = due_runs(job, latest[job.id], now, grace)
                missed = [
                    runs.ScheduleRun(
                        job=job.id,
                        scheduled_for=w,
                        outcome=runs.MISSED,
                        detail="not yet recorded: no scheduler has led since",
                    )
                    for w in reversed(pending.missed[-5:])
                ] + missed
            out.append(
                JobStatus(job, [w.astimezone(zone) for w in job.upcoming(now)], runs.last_run(s, job.id), missed)
            )
    return out
