"""The scheduler's record: one row per run of a job, the one truth about what fired.

A row is unique on (job, scheduled_for). The scheduler inserts it *before* it enqueues
anything, in its own transaction, so a second scheduler (or the same one firing twice, or
again after a restart) that reaches the same scheduled time finds the row and enqueues
nothing. The actor a run enqueued may later set its outcome (the monthly digest does).

Outcomes: ``registered`` (the scheduler first saw the job then: missed runs are counted
from here), ``enqueued``, ``missed`` (past the grace window; never run), and what the
actor found: ``done``, ``sending`` (the month's edition started), ``empty`` (it had no
items), ``skipped`` (already sending or sent, scheduled by an editor, cancelled), ``failed``.

Functions take a session and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import DateTime, String, UniqueConstraint, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailer.db import Base, aware, utcnow

REGISTERED, ENQUEUED, MISSED = "registered", "enqueued", "missed"
DONE, SENDING, EMPTY, SKIPPED, FAILED = "done", "sending", "empty", "skipped", "failed"
# Routine rows are pruned after this; misses, failures and empty editions are kept, so no
# miss ever disappears from `mailer schedule show`.
KEEP_ROUTINE = timedelta(days=7)
ROUTINE = (REGISTERED, ENQUEUED, DONE, SENDING, SKIPPED)


class ScheduleRun(Base):
    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("job", "scheduled_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(40))
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(500), default="")
    leader: Mapped[str] = mapped_column(String(200), default="")  # host:pid of the scheduler


def claim(
    session: Session,
    job: str,
    scheduled_for: datetime,
    *,
    outcome: str,
    leader: str,
    detail: str = "",
    now: datetime | None = None,
) -> ScheduleRun | None:
    """Record the run of ``job`` for ``scheduled_for``; None if it is already recorded (by
    anyone), in which case the caller must do nothing. Uses a savepoint, so a lost race
    leaves the caller's transaction usable."""
    now = now or utcnow()
    run = ScheduleRun(
        job=job,
        scheduled_for=scheduled_for.astimezone(timezone.utc),
        started_at=now,
        outcome=outcome,
        detail=detail[:500],
        leader=leader[:200],
        finished_at=None if outcome == ENQUEUED else now,
    )
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        return None
    return run


def finish(
    session: Session, run_id: int | None, outcome: str, detail: str = "", now: datetime | None = None
) -> ScheduleRun | None:
    """Set the outcome of run ``run_id`` (from the actor it enqueued); no-op for None."""
    if run_id is None:
        return None
    run = session.get(ScheduleRun, run_id)
    if run is not None:
        run.outcome, run.detail, run.finished_at = outcome, detail[:500], now or utcnow()
    return run


def release(session: Session, run_id: int) -> None:
    """Take back a run that was recorded but could not be enqueued, so it is tried again."""
    session.execute(delete(ScheduleRun).where(ScheduleRun.id == run_id))


def last_scheduled(session: Session) -> dict[str, datetime]:
    """Each job's latest recorded scheduled time (runs, misses and registrations alike)."""
    rows = session.execute(select(ScheduleRun.job, func.max(ScheduleRun.scheduled_for)).group_by(ScheduleRun.job))
    return {job: aware(when) for job, when in rows}


def last_run(session: Session, job: str) -> ScheduleRun | None:
    """The latest row of ``job`` that is a run (not a registration or a miss)."""
    return session.scalars(
        select(ScheduleRun)
        .where(ScheduleRun.job == job, ScheduleRun.outcome.not_in((REGISTERED, MISSED)))
        .order_by(ScheduleRun.scheduled_for.desc())
        .limit(1)
    ).first()


def misses(session: Session, job: str | None = None, limit: int = 20) -> list[ScheduleRun]:
    """Recorded misses, newest first."""
    q = select(ScheduleRun).where(ScheduleRun.outcome == MISSED)
    if job is not None:
        q = q.where(ScheduleRun.job == job)
    return list(session.scalars(q.order_by(ScheduleRun.scheduled_for.desc()).limit(limit)))


def prune(session: Session, job: str, now: datetime | None = None) -> int:
    """Delete ``job``'s routine rows older than :data:`KEEP_ROUTINE`, keeping its latest row
    (missed runs are counted from it)."""
    cutoff = (now or utcnow()) - KEEP_ROUTINE
    latest = select(func.max(ScheduleRun.id)).where(ScheduleRun.job == job).scalar_subquery()
    result = session.execute(
        delete(ScheduleRun).where(
            ScheduleRun.job == job,
            ScheduleRun.outcome.in_(ROUTINE),
            ScheduleRun.scheduled_for < cutoff,
            ScheduleRun.id != latest,
        )
    )
    return result.rowcount or 0
