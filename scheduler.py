"""The scheduler process: maps cron triggers to actor sends, nothing else.

Run exactly one (``python scheduler.py``). The monthly job sends ``run_period`` for the
current month on ``DIGEST_SCHEDULE`` (APScheduler cron fields, default the first Tuesday
at 09:00) in ``SCHEDULE_TIMEZONE`` (default Europe/London).
"""
from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from mailer import runtime
from mailer.actors.digest import run_period, send_due_editions, sweep
from mailer.actors.housekeeping import purge_unconfirmed_job
from mailer.boot import boot
from mailer.settings import Settings


def parse_cron(spec: str, timezone: str) -> CronTrigger:
    """``"day=1st tue,hour=9,minute=0"`` -> a CronTrigger in ``timezone``."""
    fields = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip()
    return CronTrigger(timezone=ZoneInfo(timezone), **fields)


def send_current_period(tz: str) -> None:
    runtime.current().queue.send(run_period, datetime.now(ZoneInfo(tz)).strftime("%Y-%m"))


def send_due() -> None:
    runtime.current().queue.send(send_due_editions)


def sweep_sends() -> None:
    runtime.current().queue.send(sweep)


def build_scheduler(settings: Settings) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=ZoneInfo(settings.schedule_timezone))
    scheduler.add_job(send_current_period, parse_cron(settings.digest_schedule, settings.schedule_timezone),
                      args=[settings.schedule_timezone], id="monthly-digest",
                      coalesce=True, max_instances=1, misfire_grace_time=6 * 3600)
    # Editions an editor scheduled for a set time (`mailer edition schedule`).
    scheduler.add_job(send_due, CronTrigger(minute="*", timezone=ZoneInfo(settings.schedule_timezone)),
                      id="scheduled-editions", coalesce=True, max_instances=1, misfire_grace_time=3600)
    scheduler.add_job(send_purge_unconfirmed, CronTrigger(hour=3, minute=30, timezone=ZoneInfo(settings.schedule_timezone)),
                      id="purge-unconfirmed", coalesce=True, max_instances=1, misfire_grace_time=6 * 3600)
    # Keeps every sending edition watched (dead workers, lost queue messages).
    scheduler.add_job(sweep_sends, "interval", minutes=5, id="delivery-sweep", coalesce=True,
                      max_instances=1)
    return scheduler


def send_purge_unconfirmed() -> None:
    runtime.current().queue.send(purge_unconfirmed_job)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    rt = boot(Settings.from_env())
    rt.queue.ensure_worker()
    scheduler = build_scheduler(rt.settings)
    job = scheduler.get_job("monthly-digest")
    logging.info("monthly digest job: %s", job.trigger)
    scheduler.start()


if __name__ == "__main__":
    main()
