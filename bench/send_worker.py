"""One sending worker process, measured alone: CPU a message, context switches, rate.

    python -m bench.send_worker --subscribers 40000 [--threads 4] [--rounds 5]

``bench.send`` measures the whole pipeline (fan-out, queue, two worker processes) against
the machine's ceiling; its worker CPU figure moves by several per cent from run to run.
This one isolates what a change to the send path (claims, reader lookups, composing, the
SMTP conversation, outcome writes) costs: it seeds N readers and an edition once (as
``bench.send`` does, PostgreSQL from TEST_DATABASE_URL, default database ``bench``,
**whose schema is dropped**), fans the edition out, then runs ``--rounds`` rounds in this
process. Each round puts the ledger back to ``pending`` and has ``--threads`` threads call
:func:`mailer.delivery.sending.deliver_batch` on batches of ``SEND_BATCH_SIZE`` ids, as a
worker process's threads would, into Postfix's smtp-sink on loopback (as root, like
``bench.send``; Redis is not used). One reader is held back each round, so the
edition stays ``sending`` for the next. Each round prints this process's user and system CPU
a message, its voluntary and involuntary context switches, and the CPU smtp-sink and
PostgreSQL (all its processes) used a message, how many outcomes each write carried
(:class:`mailer.delivery.sending.GroupCommit`) and the CPU the cyclic garbage collector took
a message (timed through ``gc.callbacks``); the last line gives the medians::

    send_worker cpu_ms=... user_ms=... sys_ms=... msg_s=... vcsw=... sink_cpu_ms=... pg_cpu_ms=... per_write=... gc_us=...

The process settles its collector after seeding, as a worker process does once it has
booted (:func:`mailer.collector.settle_collector`); ``--collector-defaults`` leaves
CPython's settings, to see what that saves.

The threads are greenlets, as in a worker process that ``mailer worker`` starts: gevent
patches this process first of all (see :mod:`mailer.greenlets`).

Compare two checkouts by running each in turn, several times: the machine is shared.
"""

# ruff: noqa: E402 (the imports come after gevent's patching, on purpose)
from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # before anything else is imported, as dramatiq-gevent does

import argparse
import gc
import os
import queue
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from bench import cpu_seconds, postgres_cpu_seconds, reference_ms
from bench.send import DEFAULT_DB, ensure_database, need, service_env, wait_for_sink
from bench.servers import free_port
from mailer.cli.worker import GREENLETS_DEFAULT


class QuietSink:
    """smtp-sink on a loopback port, logging nothing: ``bench.send``'s sink logs every
    recipient to a socket read by a thread of the benchmark, which here would be a
    thread of the measured process."""

    def __init__(self):
        self.port = free_port()
        user = "nobody" if os.geteuid() == 0 else os.environ.get("USER", "")
        self.proc = subprocess.Popen([need("smtp-sink"), "-u", user, f"127.0.0.1:{self.port}", "1024"])
        wait_for_sink(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=40_000)
    ap.add_argument("--threads", type=int, default=GREENLETS_DEFAULT)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--collector-defaults", action="store_true")
    args = ap.parse_args(argv)
    db_url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_DB
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    sink = QuietSink()
    try:
        return _run(args, db_url, workdir, sink)
    finally:
        if sink.proc.poll() is None:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args, db_url: str, workdir: Path, sink: QuietSink) -> int:
    os.environ.update(service_env(db_url, workdir, sink.port))
    os.environ.pop("REDIS_URL", None)  # in-memory counters; no queue is used
    from sqlalchemy import select, update

    from bench.seed import seed
    from mailer.boot import boot
    from mailer.collector import settle_collector
    from mailer.delivery import fanout
    from mailer.delivery.models import PENDING, Delivery
    from mailer.digest.compose import load_plan
    from mailer.digest.editions import build_edition
    from mailer.schema import reset
    from mailer.settings import Settings

    reference = reference_ms()
    ensure_database(db_url)
    reset(db_url)
    rt = boot(Settings.from_env())
    with rt.db.transaction() as s:
        seed(s, args.subscribers, date.today(), random.Random(6))
        edition = build_edition(s, date.today().strftime("%Y-%m"))
        fanout.start_edition(s, edition, load_plan(s, edition))
        edition_id = edition.id
    with rt.db.engine.connect() as conn:  # settled as bench.send settles it (see there)
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE")
        conn.exec_driver_sql("CHECKPOINT")
    if not args.collector_defaults:
        settle_collector()
    collector = "CPython's defaults" if args.collector_defaults else "settled"
    print(
        f"database {db_url}; {args.subscribers} readers; {args.threads} threads; collector {collector}; "
        f"reference loop {reference:.0f} ms"
    )

    rounds = []
    for n in range(args.rounds):
        with rt.db.transaction() as s:  # everyone pending again: each round sends the same
            s.execute(
                update(Delivery)
                .where(Delivery.edition_id == edition_id)
                .values(status=PENDING, claim=None, attempts=0, sent_at=None, error=None, next_attempt_at=None)
            )
            ids = list(s.scalars(select(Delivery.id).where(Delivery.edition_id == edition_id).order_by(Delivery.id)))
        ids.pop()  # one reader held back keeps the edition sending for the next round
        with rt.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE deliveries")
        rounds.append(_round(rt, ids, args.threads, sink))
        r = rounds[-1]
        print(
            f"round {n + 1}: {r['sent']} sent in {r['seconds']:.1f} s ({r['msg_s']:.0f} msg/s); CPU {r['cpu_ms']:.3f} "
            f"ms a message (user {r['user_ms']:.3f}, system {r['sys_ms']:.3f}); context switches a message "
            f"{r['vcsw']:.2f} voluntary, {r['ivcsw']:.2f} involuntary; smtp-sink {r['sink_cpu_ms']:.3f} ms, "
            f"PostgreSQL {r['pg_cpu_ms']:.3f} ms; {r['per_write']:.2f} outcomes a write; the garbage collector "
            f"{r['gc_us']:.1f} us a message",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(
        f"reference loop {reference_ms():.0f} ms after; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"send_worker cpu_ms={med['cpu_ms']:.3f} user_ms={med['user_ms']:.3f} sys_ms={med['sys_ms']:.3f} "
        f"msg_s={med['msg_s']:.0f} vcsw={med['vcsw']:.2f} sink_cpu_ms={med['sink_cpu_ms']:.3f} pg_cpu_ms={med['pg_cpu_ms']:.3f} "
        f"per_write={med['per_write']:.2f} gc_us={med['gc_us']:.1f}"
    )
    return 0 if all(r["sent"] == len(ids) for r in rounds) else 1


def _round(rt, ids: list[int], threads: int, sink: QuietSink) -> dict:
    """Send every id in ``ids`` from ``threads`` threads; this process's costs a message."""
    from mailer.delivery.sending import deliver_batch, group_commit
    from mailer.mail.transport import transport_from_settings

    batches: queue.Queue = queue.Queue()
    size = rt.settings.delivery.batch_size
    for start in range(0, len(ids), size):
        batches.put(ids[start : start + size])
    sent = []

    def work():
        transport = transport_from_settings(rt.settings)  # one relay connection a thread
        while True:
            try:
                batch = batches.get_nowait()
            except queue.Empty:
                return
            sent.append(deliver_batch(rt.db, transport, rt.settings, batch).sent)

    before, sink_before, pg_before = (
        resource.getrusage(resource.RUSAGE_SELF),
        cpu_seconds(sink.proc.pid),
        postgres_cpu_seconds(),
    )
    writes, outcomes = group_commit.writes, group_commit.outcomes
    collecting = _CollectorTime()
    gc.callbacks.append(collecting)
    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    gc.callbacks.remove(collecting)
    n = max(1, sum(sent))
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "sent": sum(sent),
        "seconds": seconds,
        "msg_s": n / seconds,
        "cpu_ms": 1000 * (user + system) / n,
        "user_ms": 1000 * user / n,
        "sys_ms": 1000 * system / n,
        "vcsw": (after.ru_nvcsw - before.ru_nvcsw) / n,
        "ivcsw": (after.ru_nivcsw - before.ru_nivcsw) / n,
        "sink_cpu_ms": 1000 * (cpu_seconds(sink.proc.pid) - sink_before) / n,
        "pg_cpu_ms": 1000 * (postgres_cpu_seconds() - pg_before) / n,
        "per_write": (group_commit.outcomes - outcomes) / max(1, group_commit.writes - writes),
        "gc_us": 1e6 * collecting.seconds / n,
    }


class _CollectorTime:
    """A ``gc.callbacks`` entry adding up the CPU the collections take (this thread's CPU
    clock: the collector runs in whichever thread allocated, and holds the GIL)."""

    def __init__(self):
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started


if __name__ == "__main__":
    sys.exit(main())
