"""``mailer worker``: the queue workers."""

from __future__ import annotations

import os
import sys
import time

import click

from mailer import runtime


def dramatiq_command(processes: int, threads: int, *options: str, greenlets: bool = True) -> list[str]:
    """The command line of the Redis mode's workers: ``processes`` Dramatiq processes of
    ``threads`` threads each (and Dramatiq's ``options``, such as ``--queues``). With
    ``greenlets`` the threads are greenlets: gevent patches the process first, as
    ``dramatiq-gevent`` does (see :mod:`mailer.greenlets` for why). The tests and the send
    benchmarks start their workers with it too."""
    runner = ["-m", "gevent.monkey", "--module", "dramatiq"] if greenlets else ["-m", "dramatiq"]
    return [
        sys.executable,
        *runner,
        "mailer.worker",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        *options,
    ]


# Greenlets cost little, and the more of them a process runs, the less CPU each message
# costs it: its outcome writes are grouped (mailer.delivery.sending.GroupCommit) and each
# wake-up serves more of them. One process, bench.send_worker: 4 greenlets 0.47 ms of
# worker CPU and 0.19 ms of PostgreSQL's a message; 8 greenlets 0.38 and 0.14 (2.3
# outcomes a write). Beyond 8 little changes, and each costs a database connection.
GREENLETS_DEFAULT = 8
THREADS_DEFAULT = 4


@click.command("worker")
@click.option("--processes", default=2, show_default=True)
@click.option(
    "--threads",
    type=int,
    default=None,
    help=f"threads a process [default: {GREENLETS_DEFAULT} greenlets on PostgreSQL, else {THREADS_DEFAULT}]",
)
def worker(processes: int, threads: int | None) -> None:
    """Run queue workers: `dramatiq` processes with REDIS_URL (their threads are
    greenlets on PostgreSQL), else threads in this process."""
    rt = runtime.current()
    queue, settings = rt.queue, rt.settings
    sqlite = settings.database_url.startswith("sqlite")
    if threads is None:
        threads = GREENLETS_DEFAULT if not (queue.embedded or sqlite) else THREADS_DEFAULT
    if not queue.embedded:
        from mailer.metrics.workers import prepare  # Dramatiq's metrics: the Redis mode only

        prepare(settings)  # WORKER_METRICS: Dramatiq's metrics port and directory
        # Dramatiq's own command line, in this process (the same pid for a service manager),
        # started afresh so that gevent patches it before anything else is imported. Over
        # SQLite the threads stay threads: a wait for its write lock is inside C, where
        # gevent cannot hand the process to another greenlet meanwhile.
        command = dramatiq_command(processes, threads, greenlets=not sqlite)
        os.execv(command[0], command)
    queue.ensure_worker(threads)
    click.echo("Embedded worker running (no REDIS_URL); Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
