"""``mailer schedule``: the scheduler's jobs, their next and last runs, misses, the leader."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import click

from mailer import runtime


@click.group("schedule")
def schedule() -> None:
    """The scheduler's jobs (`python scheduler.py` runs them)."""


@schedule.command("show")
def schedule_show() -> None:
    """Every job: its next three runs, its last run and outcome, missed runs; and which
    scheduler process leads."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.db import aware
    from mailer.leadership import leadership_for
    from mailer.schedule import status

    rt = runtime.current()
    st = rt.settings
    zone = ZoneInfo(st.schedule_timezone)
    lock = leadership_for(st, me="mailer schedule show")
    try:
        leader = lock.holder()
    except Exception as err:  # noqa: BLE001 - say what is wrong rather than fail the whole page
        leader = f"unknown ({lock.name} unreachable: {err.__class__.__name__})"
    finally:
        getattr(lock, "close", lambda: None)()

    def at(when):
        return f"{aware(when).astimezone(zone):%Y-%m-%d %H:%M %Z}" if when else "-"

    click.echo(f"Leader: {leader or 'none (no scheduler is running)'}  [{lock.name}]")
    click.echo(
        f"Times in {st.schedule_timezone}; missed runs up to {st.schedule_grace_hours} h "
        f"late still run (SCHEDULE_GRACE_HOURS)."
    )
    for job in status(st, rt.db):
        click.echo(f"\n{job.job.id}: {job.job.describe}")
        click.echo(f"  next     {', '.join(at(w) for w in job.upcoming) or 'never'}")
        last = job.last
        if last is None:
            click.echo("  last     never run")
        else:
            extra = f" ({last.detail})" if last.detail else ""
            click.echo(f"  last     {at(last.scheduled_for)}: {last.outcome}{extra}, by {last.leader or '?'}")
        for miss in job.missed:
            click.echo(f"  MISSED   {at(miss.scheduled_for)}: {miss.detail}")
