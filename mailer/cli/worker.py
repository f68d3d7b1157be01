"""``mailer worker``: the queue workers."""

from __future__ import annotations

import sys
import time

import click

from mailer import runtime


@click.command("worker")
@click.option("--processes", default=2, show_default=True)
@click.option("--threads", default=4, show_default=True)
def worker(processes: int, threads: int) -> None:
    """Run queue workers: `dramatiq` processes with REDIS_URL, else threads in this process."""
    queue = runtime.current().queue
    if not queue.embedded:
        # only the Redis mode hands over to dramatiq's own command line
        from dramatiq.cli import main as dramatiq_main

        from mailer.metrics.workers import prepare

        prepare(runtime.current().settings)  # WORKER_METRICS: Dramatiq's metrics port and directory
        sys.argv = ["dramatiq", "mailer.worker", "--processes", str(processes), "--threads", str(threads)]
        sys.exit(dramatiq_main())
    queue.ensure_worker(threads)
    click.echo("Embedded worker running (no REDIS_URL); Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
