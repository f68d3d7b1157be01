"""The scheduler process: ``python scheduler.py``. Run one or more; one leads and fires.

The job table, leadership and missed-run handling live in :mod:`mailer.schedule` and
:mod:`mailer.leadership`; this entry point only assembles the process and loops until
SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import signal
import threading

from mailer.boot import boot
from mailer.db import utcnow
from mailer.leadership import leadership_for
from mailer.logs import configure_logging
from mailer.schedule import build_scheduler, parse_cron  # noqa: F401  (parse_cron: kept importable from here)
from mailer.settings import Settings


def main() -> None:
    rt = boot(Settings.from_env())
    configure_logging(rt.settings)
    # Embedded mode (no REDIS_URL): the queue lives in this process, so it works it off too.
    rt.queue.ensure_worker()
    scheduler = build_scheduler(rt.settings, rt.db, leadership_for(rt.settings))
    for job in scheduler.jobs:
        logging.info(
            "job %s: %s; next %s",
            job.id,
            job.describe,
            ", ".join(f"{w:%Y-%m-%d %H:%M %Z}" for w in job.upcoming(utcnow(), 1)),
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        scheduler.run(stop)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
