"""Recovery benchmark: how soon an edition completes after a fault strikes mid-send, with
the service's own timings, and what the ledger and the relay then hold.

    python -m bench.recovery [--subscribers 20000] [--scenario NAME ...]

The fault tests (``tests/mailer/delivery/test_faults.py``) prove the behaviour with a
2-second lease and bounds loose enough for a busy machine; this carries the figures, with
``SEND_LEASE_SECONDS`` and ``SEND_WATCH_SECONDS`` at their defaults (30 s and 10 s) unless
the environment sets them. Each scenario seeds N readers and a 40-item edition afresh
(as ``bench.send`` does) in a PostgreSQL cluster and a Redis of its own
(:mod:`bench.servers`, so restarting them touches nothing else), starts ``mailer worker``'s
command line (2 processes of `mailer worker`'s default number of greenlets, unless asked otherwise) against Postfix's
smtp-sink on loopback (as root; Debian's ``postfix`` package), and strikes once a third of
the readers have their copy, while a chunk is claimed (for ``one_killed``, by the process
that is killed):

- ``none``: no fault; its time from the same point on is what the faults add to;
- ``one_killed``: two worker groups of one process each; one process gets SIGKILL;
- ``all_killed``: every worker process gets SIGKILL, and a new group starts at once;
- ``redis_lost``: Redis stops and comes back empty (no persistence: the queue is gone),
  no scheduler running;
- ``redis_lost_scheduler``: the same with ``python scheduler.py`` running;
- ``postgres_restart``: ``pg_ctl restart -m fast``;
- ``two_sigterms``: the worker group gets SIGTERM twice (a service manager's group stop);
  once it has exited, a new group sends the rest.

Each prints one line::

    recovery scenario=... readers=... fault_at=... done_after_fault_s=... unknown=... \
unknown_at_relay=... lost=... duplicates=...

``done_after_fault_s``: from the fault to the edition marked sent (for ``two_sigterms``
also ``stopped_s``, the old group's time to exit). ``unknown``: deliveries the ledger
marks ``unknown`` (the issue's bound: one per killed greenlet), of which
``unknown_at_relay`` reached the sink. ``lost``: readers with no copy whom the ledger does
not mark ``unknown``; ``duplicates``: readers with two copies or more. Both must be 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from bench import reference_ms
from bench.send import Sink, children, seed, service_env, start_workers
from bench.servers import PrivatePostgres, PrivateRedis
from mailer.cli.worker import GREENLETS_DEFAULT

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = (
    "none",
    "one_killed",
    "all_killed",
    "redis_lost",
    "redis_lost_scheduler",
    "postgres_restart",
    "two_sigterms",
)


class Run:
    """One scenario's edition, servers and processes."""

    def __init__(self, pg: PrivatePostgres, redis: PrivateRedis, sink: Sink, workdir: Path, args):
        self.pg, self.redis, self.sink, self.args = pg, redis, sink, args
        self.env = dict(os.environ, **service_env(pg.url, workdir, sink.port), REDIS_URL=redis.url)
        self.groups: list[subprocess.Popen] = []
        self.others: list[subprocess.Popen] = []
        self.fault_at = 0  # copies at the sink when the fault struck

    def prepare(self) -> None:
        """A fresh schema, N readers and this month's edition; an empty queue and sink."""
        import redis as redis_client

        from mailer.boot import boot
        from mailer.digest.editions import build_edition
        from mailer.schema import reset
        from mailer.settings import Settings

        os.environ.update(self.env)  # this process enqueues through the same Redis
        reset(self.pg.url)
        redis_client.Redis.from_url(self.redis.url).flushdb()
        self.rt = boot(Settings.from_env(self.env))
        with self.rt.db.transaction() as s:
            self.emails = [e.lower() for e in seed(s, self.args.subscribers)]
            edition = build_edition(s, date.today().strftime("%Y-%m"))
            self.edition_id, self.period = edition.id, edition.period
        self.sink.forget()
        self.base = self.sink.total

    def workers(self, processes: int | None = None) -> subprocess.Popen:
        group = start_workers(self.env, processes or self.args.processes, self.args.threads)
        self.groups.append(group)
        return group

    def start_sending(self) -> None:
        from mailer.actors.digest import start_edition

        self.rt.queue.send(start_edition, self.edition_id)

    def reached(self) -> int:
        return self.sink.total - self.base

    def wait_until(self, predicate, what: str) -> float:
        """Seconds until ``predicate()``; exits the benchmark after ``--timeout``."""
        t0 = time.monotonic()
        while not predicate():
            if time.monotonic() - t0 > self.args.timeout:
                sys.exit(f"timed out after {self.args.timeout:.0f}s waiting for {what}")
            time.sleep(0.05)
        return time.monotonic() - t0

    def claims(self) -> int:
        """Claims (a greenlet's chunk each) with deliveries ``sending`` just now."""
        from sqlalchemy import func, select

        from mailer.delivery.models import SENDING, Delivery

        with self.rt.db.transaction() as s:
            return s.scalar(
                select(func.count(Delivery.claim.distinct())).where(
                    Delivery.edition_id == self.edition_id, Delivery.status == SENDING
                )
            )

    def sent(self) -> bool:
        from mailer.digest.models import Edition

        try:
            with self.rt.db.transaction() as s:
                return s.get(Edition, self.edition_id).status == "sent"
        except Exception:  # the database restarting: not yet
            return False

    def ledger(self) -> dict[str, str]:
        from sqlalchemy import select

        from mailer.delivery.models import Delivery
        from subscribers.models import Subscriber

        with self.rt.db.transaction() as s:
            rows = s.execute(
                select(Subscriber.email, Delivery.status)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.edition_id == self.edition_id)
            ).all()
        return {email.lower(): state for email, state in rows}

    def report(self, name: str, took: float, extra: str = "") -> bool:
        got = self.sink.delivered()
        book = self.ledger()
        states = Counter(book.values())
        unknown = [e for e, st in book.items() if st == "unknown"]
        lost = sum(1 for e in self.emails if not got.get(e) and book.get(e) != "unknown")
        duplicates = sum(1 for n in got.values() if n > 1)
        print(f"  ledger: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}", flush=True)
        print(
            f"recovery scenario={name} readers={len(book)} fault_at={self.fault_at} "
            f"done_after_fault_s={took:.1f}{extra} unknown={len(unknown)} "
            f"unknown_at_relay={sum(1 for e in unknown if got.get(e))} lost={lost} duplicates={duplicates}",
            flush=True,
        )
        return not lost and not duplicates

    def end(self) -> None:
        for proc in self.groups + self.others:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.rt.db.dispose()


def strike(run: Run, name: str) -> tuple[float, str]:
    """Start the send, strike ``name`` once a third of the readers have their copy, and
    return the seconds from the fault until the edition was sent (and any extra figure)."""
    third = len(run.emails) // 3
    if name == "one_killed":
        doomed = run.workers(1)
        run.workers(1)
    elif name == "redis_lost_scheduler":
        run.workers()
        scheduler = subprocess.Popen(
            [sys.executable, str(ROOT / "scheduler.py")],
            env=run.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        run.others.append(scheduler)
    else:
        first = run.workers()
    run.start_sending()
    run.wait_until(lambda: run.reached() >= third, "a third of the readers")
    # Then strike mid-chunk: between batches a worker may hold no claim, and a fault then
    # tests less. Under one_killed the survivor holds at most one claim a greenlet, so
    # more claims than that means the doomed process holds one too.
    held = run.args.threads if name == "one_killed" else 0
    run.wait_until(lambda: run.claims() > held or run.sent(), "a claimed chunk")
    if run.sent():
        sys.exit("the edition was sent before the fault could strike: try more --subscribers")
    run.fault_at = run.reached()
    extra = ""
    t0 = time.monotonic()
    if name == "one_killed":
        os.kill(children(doomed.pid)[0], signal.SIGKILL)
    elif name == "all_killed":
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        run.workers()
    elif name.startswith("redis_lost"):
        run.redis.stop()
        for f in run.redis.dir.iterdir():  # no persistence: the queue is lost
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        run.redis.start()
    elif name == "postgres_restart":
        run.pg.restart()
    elif name == "two_sigterms":
        os.killpg(first.pid, signal.SIGTERM)
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(run.args.timeout)
        extra = f" stopped_s={time.monotonic() - t0:.1f}"
        run.workers()
    run.wait_until(run.sent, "the edition to be sent")
    return time.monotonic() - t0, extra


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=20_000)
    ap.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    ap.add_argument("--processes", type=int, default=2, help="dramatiq worker processes a group")
    ap.add_argument("--threads", type=int, default=GREENLETS_DEFAULT, help="greenlets a worker process")
    ap.add_argument("--timeout", type=float, default=600, help="give up on a scenario after this many seconds")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root: smtp-sink chroots, and the private PostgreSQL runs as the postgres user")
    # Stopped from outside, still end the workers, the sink and the private servers below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from mailer.settings import Settings

    cfg = Settings.from_env(dict(os.environ, MAILER_ENV="test", SECRET_KEY="x")).delivery
    print(
        f"lease {cfg.lease_seconds:g}s, sweep every {cfg.watch_seconds:g}s; {args.processes} x {args.threads} "
        f"greenlets; reference loop {reference_ms():.0f} ms; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    pg = PrivatePostgres().start()
    redis = PrivateRedis(workdir / "redis")
    (workdir / "redis").mkdir()
    redis.start()
    (workdir / "sink").mkdir()
    sink = Sink(workdir / "sink", keep_messages=True)
    ok = True
    try:
        for name in args.scenario or SCENARIOS:
            run = Run(pg, redis, sink, workdir, args)
            run.prepare()
            try:
                took, extra = strike(run, name)
                ok &= run.report(name, took, extra)
            finally:
                run.end()
    finally:
        sink.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"reference loop {reference_ms():.0f} ms after; load average {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
