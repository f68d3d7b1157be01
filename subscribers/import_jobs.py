"""Imports from the console: check a file (a dry run), then run it, with progress.

The dry run and the import are the same call of :func:`subscribers.importer.import_csv`;
the dry run's writes are made inside a savepoint and rolled back. Against the same
database both give the same outcome for every row, by construction.

An :class:`~subscribers.models.ImportJob` keeps the file between the two steps; it is
emptied once the import has run or failed, and unconfirmed jobs are deleted after a day
(:func:`purge_stale`), since the file holds personal data. Functions take a session and
never commit.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailer.db import aware, utcnow
from mailer.paging import Paged, clamp
from mailer.validation import clean_text
from subscribers.importer import BASES, ImportError_, ImportRefused, ImportReport, import_csv
from subscribers.models import CHECKED, DONE, FAILED, QUEUED, RUNNING, ImportJob

MAX_BYTES = 20 * 1024 * 1024  # about 200,000 rows
STALE_AFTER = timedelta(days=1)
# A running import's worker writes a heartbeat this often (mailer.actors.imports); one not
# heard from for HEARTBEAT_TIMEOUT is taken for dead.
HEARTBEAT_EVERY = timedelta(seconds=20)
HEARTBEAT_TIMEOUT = timedelta(minutes=3)


class JobRefused(Exception):
    """The job cannot move on from where it is (its message says why, for the page)."""


def decode(data: bytes) -> str:
    """The uploaded bytes as text (UTF-8, with or without a byte-order mark), or
    :class:`ImportError_`."""
    if len(data) > MAX_BYTES:
        raise ImportError_(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it and import each part.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportError_('The file is not UTF-8 text; save it as "CSV UTF-8" and try again.') from None


def _rows(report: ImportReport) -> list[list]:
    return [[r.line, r.email, r.outcome, r.message] for r in report.rows]


def _import(session: Session, job: ImportJob, progress: Callable[[int], None] | None = None) -> ImportReport:
    return import_csv(
        session,
        io.StringIO(job.content, newline=""),
        source=job.source,
        basis=job.basis,
        skip_invalid=job.skip_invalid,
        progress=progress,
    )


@dataclass(frozen=True)
class DryRun:
    report: ImportReport
    refused: bool  # invalid rows and skip_invalid off: the import would write nothing


def dry_run(session: Session, job: ImportJob) -> DryRun:
    """What importing ``job`` would do now, row by row; nothing is written.

    It reads inside a savepoint before its first write, so on SQLite ``session`` must be a
    writer (:attr:`mailer.db.Database.writer`, as every console POST has): on a plain
    session another connection's commit in between fails the write at once."""
    savepoint = session.begin_nested()
    try:
        report, refused = _import(session, job), False
    except ImportRefused as err:
        report, refused = err.report, True
    finally:
        savepoint.rollback()
    return DryRun(report, refused)


def check(
    session: Session,
    *,
    content: str,
    filename: str,
    basis: str,
    source: str,
    skip_invalid: bool,
    created_by: str,
) -> tuple[ImportJob, DryRun]:
    """Store an uploaded file as a job and dry-run it (on SQLite in a writer session: see
    :func:`dry_run`). Raises :class:`ImportError_` for a file that cannot be imported at
    all (nothing stored then)."""
    if basis not in BASES:
        raise ImportError_(f"The consent basis must be one of: {', '.join(BASES)}.")
    job = ImportJob(
        created_at=utcnow(),
        created_by=created_by,
        filename=clean_text("filename", filename, 200),
        basis=basis,
        source=clean_text("source", source or filename or "console", 100),
        skip_invalid=skip_invalid,
        content=content,
        status=CHECKED,
        rows_total=0,
        rows_done=0,
        error="",
    )
    result = dry_run(session, job)
    job.rows_total = len(result.report.rows)
    job.dry_run_counts = dict(result.report.counts)
    job.report = _rows(result.report)
    if result.refused:
        job.error = f"{result.report.counts['invalid']} invalid rows: fix them, or import the valid rows only."
    session.add(job)
    session.flush()
    return job, result


def queue(session: Session, job: ImportJob) -> None:
    """Confirm a checked job: it is queued to run. :class:`JobRefused` unless it is checked
    and its dry run would write something."""
    if job.status != CHECKED:
        raise JobRefused("This import has already been started.")
    if job.dry_run_counts and job.dry_run_counts.get("invalid") and not job.skip_invalid:
        raise JobRefused("Some rows are invalid: fix the file and check it again, or import the valid rows only.")
    job.status = QUEUED


def start(session: Session, job: ImportJob) -> bool:
    """Claim a queued job for running; False when it is not queued (already run, or
    taken by another worker), so a redelivered message does nothing."""
    if job.status != QUEUED:
        return False
    job.status, job.rows_done, job.heartbeat_at = RUNNING, 0, utcnow()
    return True


def beat(session: Session, job_id: int, *, rows_done: int | None = None, now: datetime | None = None) -> None:
    """The running worker's sign of life (and, when given, how many rows it checked)."""
    values: dict = {"heartbeat_at": now or utcnow()}
    if rows_done is not None:
        values["rows_done"] = rows_done
    session.execute(update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == RUNNING).values(**values))


def stalled(job: ImportJob, now: datetime) -> bool:
    """Whether ``job`` says it is running but its worker has not been heard from within
    :data:`HEARTBEAT_TIMEOUT` (the worker died: killed, out of memory, machine gone)."""
    if job.status != RUNNING:
        return False
    last = job.heartbeat_at or job.created_at
    return now - aware(last) > HEARTBEAT_TIMEOUT


def mark_stalled(session: Session, job: ImportJob, now: datetime) -> bool:
    """End a stalled job as failed, keeping its file so it can be retried. An import is
    one transaction (all or nothing), so a worker that died before its commit wrote no
    row: the message says so. False (nothing changed) when the job is not stalled."""
    if not stalled(job, now):
        return False
    last = aware(job.heartbeat_at or job.created_at)
    job.status, job.finished_at = FAILED, now
    job.error = (
        f"The worker stopped (last heard from at {last:%H:%M} UTC) after checking {job.rows_done} of "
        f"{job.rows_total} rows. Nothing was written: an import is all or nothing. Retry it."
    )
    return True


def retry(session: Session, job: ImportJob) -> None:
    """Queue again a job whose worker stopped (its file is still kept)."""
    if job.status != FAILED or not job.content:
        raise JobRefused("Only an import whose worker stopped can be retried; check the file again instead.")
    job.status, job.error, job.finished_at, job.rows_done, job.heartbeat_at = QUEUED, "", None, 0, None


def run(session: Session, job: ImportJob, progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import ``job`` for real, in the caller's transaction; ``job`` ends done with the
    report of every row, and its file is dropped. :class:`ImportRefused` or
    :class:`ImportError_` when the file no longer imports (the caller rolls back and calls
    :func:`fail`)."""
    report = _import(session, job, progress)
    job.status, job.finished_at = DONE, utcnow()
    job.rows_done = job.rows_total = len(report.rows)
    job.counts, job.report, job.content, job.error = dict(report.counts), _rows(report), "", ""
    return report


def fail(session: Session, job: ImportJob, message: str, report: ImportReport | None = None) -> None:
    """Record that ``job`` could not be imported (nothing of it was written)."""
    job.status, job.finished_at, job.content, job.error = FAILED, utcnow(), "", message[:500]
    if report is not None:
        job.counts, job.report = dict(report.counts), _rows(report)


def purge_stale(session: Session, now: datetime | None = None) -> int:
    """Delete checked jobs nobody confirmed within a day (with their files), and drop the
    file of a stopped import nobody retried within a day."""
    cutoff = (now or utcnow()) - STALE_AFTER
    result = session.execute(delete(ImportJob).where(ImportJob.status == CHECKED, ImportJob.created_at < cutoff))
    session.execute(
        update(ImportJob)
        .where(ImportJob.status == FAILED, ImportJob.content != "", ImportJob.finished_at < cutoff)
        .values(content="")
    )
    return result.rowcount or 0


def rows_of(job: ImportJob, outcome: str = "", page: int = 1, per_page: int = 100) -> tuple[list[list], int]:
    """One page of ``job``'s report rows (all, or those with ``outcome``) and how many
    there are."""
    rows = [r for r in (job.report or []) if not outcome or r[2] == outcome]
    start = (max(1, page) - 1) * per_page
    return rows[start : start + per_page], len(rows)


@dataclass(frozen=True)
class JobsPage(Paged):
    jobs: list[ImportJob]
    total: int
    page: int
    per_page: int


def recent(session: Session, page: int = 1, per_page: int = 20) -> JobsPage:
    """Import jobs, newest first, one page of them."""
    total = session.scalar(select(func.count()).select_from(ImportJob)) or 0
    page = clamp(page, total, per_page)
    jobs = session.scalars(
        select(ImportJob).order_by(ImportJob.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return JobsPage(list(jobs), total, page, per_page)
