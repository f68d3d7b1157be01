"""The job that runs a checked and confirmed subscriber import (from the console)."""

from __future__ import annotations

from mailer import runtime
from mailer.queue import job
from mailer.staff import audit
from subscribers import import_jobs
from subscribers.importer import ImportError_, ImportRefused
from subscribers.models import ImportJob


@job(queue_name="imports", max_retries=0, time_limit=30 * 60_000)
def run_import(job_id: int) -> None:
    """Run import ``job_id`` in one transaction (all or nothing), reporting how many rows
    are checked through short transactions of their own; audit the outcome.

    Safe to run twice: only a queued job is claimed, so a redelivered message does nothing.
    """
    rt = runtime.current()
    with rt.db.transaction() as s:
        claimed = import_jobs.start(s, s.get(ImportJob, job_id))
    if not claimed:
        return

    def progress(done: int) -> None:
        # Called before the import writes anything, so this short transaction never
        # waits on the import's own (SQLite has one writer at a time).
        with rt.db.transaction() as p:
            p.get(ImportJob, job_id).rows_done = done

    try:
        with rt.db.transaction() as s:
            j = s.get(ImportJob, job_id)
            report = import_jobs.run(s, j, progress)
            audit.record(s, j.created_by, "subscriber.import.done", j, after=dict(report.counts))
    except (ImportRefused, ImportError_) as err:
        report = getattr(err, "report", None)
        with rt.db.transaction() as s:
            j = s.get(ImportJob, job_id)
            import_jobs.fail(s, j, str(err), report)
            audit.record(s, j.created_by, "subscriber.import.failed", j, after={"error": j.error})
