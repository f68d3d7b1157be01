"""The job that runs a checked and confirmed subscriber import (from the console)."""

from __future__ import annotations

import logging
import threading

from mailer import runtime
from mailer.queue import job
from mailer.staff import audit
from subscribers import import_jobs
from subscribers.importer import ImportError_, ImportRefused
from subscribers.models import ImportJob

log = logging.getLogger(__name__)


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
            import_jobs.beat(p, job_id, rows_done=done)

    stop = threading.Event()
    keeper = threading.Thread(target=_keep_alive, args=(rt.db, job_id, stop), name=f"import-{job_id}", daemon=True)
    keeper.start()
    try:
        with rt.db.transaction(lock_first=False) as s:  # progress() commits while it reads
            j = s.get(ImportJob, job_id)
            report = import_jobs.run(s, j, progress)
            audit.record(s, j.created_by, "subscriber.import.done", j, after=dict(report.counts))
    except (ImportRefused, ImportError_) as err:
        report = getattr(err, "report", None)
        with rt.db.transaction() as s:
            j = s.get(ImportJob, job_id)
            import_jobs.fail(s, j, str(err), report)
            audit.record(s, j.created_by, "subscriber.import.failed", j, after={"error": j.error})
    finally:
        stop.set()
        keeper.join(5)


def _keep_alive(db, job_id: int, stop: threading.Event) -> None:
    """Beat the job's heartbeat while the import runs (the console takes a job not heard
    from for a while for one whose worker died). While the import holds SQLite's one write
    lock a beat waits or fails: it is tried again at the next beat."""
    while not stop.wait(import_jobs.HEARTBEAT_EVERY.total_seconds()):
        try:
            with db.transaction() as s:
                import_jobs.beat(s, job_id)
        except Exception:  # a busy database: the next beat tries again
            log.debug("import %s: heartbeat not written this time", job_id, exc_info=True)
