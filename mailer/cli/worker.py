"""``mailer worker``: the queue workers."""
from __future__ import annotations

import sys
import time

import click


@click.command("worker")
@click.option("--processes", default=2, show_default=True)
@click.option("--threads", default=4, show_default=True)
def worker(processes: int, threads: int) -> None:
    """Run queue workers: `dramatiq` processes with REDIS_URL, else threads in this process."""
    from mailer.broker import embedded, ensure_embedded_worker

    if not embedded():
        from dramatiq.cli import main as dramatiq_main

        from mailer import runtime
        from mailer.metrics.workers import prepare

        prepare(runtime.current().settings)  # WORKER_METRICS: Dramatiq's metrics port and directory
        sys.argv = ["dramatiq", "mailer.worker", "--processes", str(processes), "--threads", str(threads)]
        sys.exit(dramatiq_main())
    ensure_embedded_worker(threads)
    click.echo("Embedded worker running (no REDIS_URL); Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
