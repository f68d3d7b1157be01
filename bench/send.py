"""End-to-end send benchmark: PostgreSQL, Redis, real `dramatiq` workers, Postfix smtp-sink.

    python -m bench.send --subscribers 100000
    python -m bench.send --subscribers 1000000 --fanout-only

Seeds N confirmed subscribers and a 40-item edition, starts `dramatiq mailer.worker`
processes, sends the edition into `smtp-sink` on loopback, and compares the end-to-end
rate with the machine's ceiling: `smtp-source` sending messages of the same size into the
same sink over as many connections as the workers have threads: three runs before the send
(once VACUUM ANALYZE and a CHECKPOINT have settled the seeding) and three after it, the
median of the six. On this shared machine one run has measured anywhere from half to the
whole of the usual rate, and the machine's speed drifts within a minute: runs on both
sides of the send keep a slow or fast spell on one side from setting the ratio alone.
The sink's capture of every envelope recipient gives the count of readers who got no
message or more than one. Beside the workers', PostgreSQL's and the sink's CPU a message,
it prints the workers' as a multiple of the sink's, a figure the machine's drift moves
less (the sink's work a message is fixed).

PostgreSQL and Redis come from TEST_DATABASE_URL / TEST_REDIS_URL (default: the local
servers, database `bench` and Redis db 14). The schema in that database is dropped and
recreated and the Redis db flushed. Needs Debian's `postfix` package for smtp-sink and
smtp-source (Postfix itself is never started).

With ``--fanout-only`` nothing is sent: one worker-like process runs the edition's fan-out
job (ledger rows made, every batch enqueued to Redis) and the time and that process's
peak RSS are reported, so a million-reader fan-out can be measured on a small machine.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

from bench import cpu_seconds, postgres_cpu_seconds, processes_cpu_seconds, reference_ms
from bench.servers import free_port
from mailer.cli.worker import GREENLETS_DEFAULT

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
CEILING_RCPT = "ceiling@sink.invalid"


def wait_for_sink(port: int) -> None:
    """Return once smtp-sink accepts connections on ``port`` (5 s at most)."""
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("smtp-sink did not start")


def service_env(db_url: str, workdir: Path, sink_port: int) -> dict[str, str]:
    """The settings a benchmark's service runs with: ``db_url``, a scratch ``VAR_DIR`` in
    ``workdir``, and smtp-sink on ``sink_port`` as the relay."""
    return {
        "DATABASE_URL": db_url,
        "MAILER_ENV": "test",
        "SECRET_KEY": "bench-secret",
        "VAR_DIR": str(workdir / "var"),
        "SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "BASE_URL": "https://digest.example.org",
        "MAIL_FROM": "End Racism This Generation <digest@ertg.example.org>",
    }


def ensure_database(url: str) -> None:
    """Create the benchmark database if the server lacks it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        if not c.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}):
            c.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


def need(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
    if not path:
        sys.exit(f"{tool} not found: apt-get install postfix (the package; Postfix is not run)")
    return path


class Sink:
    """Postfix's smtp-sink on a loopback port, logging each RCPT to a syslog socket we hold.

    smtp-sink runs chrooted (``-R``) into a scratch directory whose ``dev/log`` is a
    datagram socket read here, so every accepted recipient is counted without capturing
    message bodies to disk (which would halve the sink's speed) and without touching the
    machine's own syslog.

    A recipient is logged when the relay takes its ``RCPT``, before the message text: a
    transaction the sender abandons after announcing its envelope (a worker stopping, or
    losing its database) is logged too. With ``keep_messages`` the sink also writes each
    *completed* message to ``messages/`` (slower), which :meth:`delivered` counts.
    """

    def __init__(self, workdir: Path, keep_messages: bool = False):
        self.port = free_port()
        self.counts: Counter = Counter()
        self.total = 0  # every RCPT the sink logged (a number read without copying counts)
        workdir.chmod(0o755)  # smtp-sink, chrooted here as nobody, must reach dev/log
        (workdir / "dev").mkdir(parents=True, exist_ok=True)
        self.log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.log.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.log.bind(str(workdir / "dev" / "log"))
        os.chmod(workdir / "dev" / "log", 0o666)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.messages = workdir / "messages" if keep_messages else None
        dump = []
        if self.messages is not None:
            self.messages.mkdir(exist_ok=True)
            self.messages.chmod(0o777)  # written by smtp-sink as nobody
            dump = ["-d", "/messages/%H%M."]  # a path inside the chroot
        cmd = [
            need("smtp-sink"),
            "-u",
            "nobody" if os.geteuid() == 0 else os.environ.get("USER", ""),
            "-R",
            str(workdir),
            "-s",
            "RCPT",
            *dump,
            f"127.0.0.1:{self.port}",
            "1024",
        ]
        if os.geteuid() != 0:
            sys.exit("smtp-sink needs root for -R (chroot); run the benchmark as root")
        self.proc = subprocess.Popen(cmd)
        wait_for_sink(self.port)

    def _read(self) -> None:
        while True:
            try:
                line = self.log.recv(4096)
            except OSError:
                return
            _, found, rest = line.partition(b"RCPT TO:<")
            if found:
                self.counts[rest.split(b">")[0].decode().lower()] += 1
                self.total += 1

    def recipients(self) -> Counter:
        time.sleep(0.5)  # let the last datagrams in
        return Counter(self.counts)

    def delivered(self) -> Counter:
        """Completed messages by recipient (``keep_messages`` only), from the headers
        smtp-sink puts at the top of each message it wrote."""
        time.sleep(0.5)  # let the last files be written
        got: Counter = Counter()
        for path in self.messages.iterdir():
            with path.open("rb") as f:
                head = f.read(1024)
            for line in head.split(b"\n")[:8]:
                if line.startswith(b"X-Rcpt-Args: <"):
                    got[line[14:].split(b">")[0].decode().lower()] += 1
        return got

    def forget(self) -> None:
        """Start counting afresh: drop what was logged and written so far."""
        self.counts.clear()
        if self.messages is not None:
            for path in self.messages.iterdir():
                path.unlink()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def ceiling(sink: Sink, size: int, messages: int, sessions: int) -> float:
    """Messages per second smtp-source pushes into the sink, same size, same connections."""
    start = time.perf_counter()
    subprocess.run(
        [
            need("smtp-source"),
            "-d",
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "bench@sink.invalid",
            "-t",
            CEILING_RCPT,
            f"127.0.0.1:{sink.port}",
        ],
        check=True,
    )
    return messages / (time.perf_counter() - start)


def children(pid: int) -> list[int]:
    try:
        out = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in out]


def peak_rss_mb(pids: list[int]) -> float:
    """The highest peak resident set (VmHWM) of any one worker process."""
    best = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            pass
    return best / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--processes", type=int, default=2, help="dramatiq worker processes")
    ap.add_argument("--threads", type=int, default=GREENLETS_DEFAULT, help="threads per worker process")
    ap.add_argument("--ceiling-messages", type=int, default=10_000, help="messages in each of the three ceiling runs")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument(
        "--fanout-only", action="store_true", help="measure the fan-out (time, peak RSS) in one process; send nothing"
    )
    args = ap.parse_args(argv)

    db_url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_DB
    redis_url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS
    workdir = Path(tempfile.mkdtemp(prefix="bench-send-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    sink = Sink(workdir)
    procs: list[subprocess.Popen] = []
    try:
        return _run(args, db_url, redis_url, workdir, sink, procs)
    finally:  # never leave workers or the sink behind, whatever happened
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        if sink.proc.poll() is None:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def start_workers(env: dict[str, str], processes: int, threads: int) -> subprocess.Popen:
    """``mailer worker``'s command line (greenlets, see mailer.cli.worker) in a process group
    of its own, once every worker process is ready; its log is drained in the background."""
    from mailer.cli.worker import dramatiq_command

    worker = subprocess.Popen(
        dramatiq_command(processes, threads), env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    ready = 0
    while ready < processes:
        line = worker.stderr.readline()
        if not line:
            os.killpg(worker.pid, signal.SIGKILL)
            sys.exit("the dramatiq workers exited during start-up")
        ready += "is ready for action" in line
    threading.Thread(target=lambda: [None for _ in worker.stderr], daemon=True).start()  # keep draining
    return worker


def _run(args, db_url: str, redis_url: str, workdir: Path, sink: Sink, procs: list) -> int:
    env = dict(os.environ, **service_env(db_url, workdir, sink.port), REDIS_URL=redis_url)
    os.environ.update(env)  # this process enqueues through the same Redis broker

    import redis
    from sqlalchemy import select

    from mailer.boot import boot
    from mailer.schema import reset
    from mailer.settings import Settings

    reference = reference_ms()
    print(f"database {db_url}, redis {redis_url}, sink 127.0.0.1:{sink.port}", flush=True)
    redis.Redis.from_url(redis_url).flushdb()
    ensure_database(db_url)
    reset(db_url)
    rt = boot(Settings.from_env())
    t = time.perf_counter()
    from mailer.delivery.sending import prepared_for
    from mailer.digest.compose import compose
    from mailer.digest.editions import build_edition
    from subscribers.service import recipients

    with rt.db.transaction() as s:
        emails = seed(s, args.subscribers)
        edition = build_edition(s, date.today().strftime("%Y-%m"))
        edition_id = edition.id
    # What autovacuum would soon do on its own: the planner knows the tables, and no vacuum of
    # the freshly inserted rows starts in the middle of the measurements. The CHECKPOINT
    # writes the seeding's pages out now, not while the ceiling is measured (one run straight
    # after seeding measured half the usual rate).
    with rt.db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE")
        conn.exec_driver_sql("CHECKPOINT")
    with rt.db.transaction() as s:
        prepared = prepared_for(s, s.get(rt_edition(), edition_id), rt.settings)
        from subscribers.models import Subscriber

        sample = recipients(s, list(s.scalars(select(Subscriber.id).order_by(Subscriber.id).limit(200))))
        sizes = [len(e.data) for e in (compose(prepared, r) for r in sample) if e]
    size = sum(sizes) // len(sizes)
    print(
        f"seeded {len(emails)} subscribers in {time.perf_counter() - t:.1f}s; average message {size / 1024:.1f} KB",
        flush=True,
    )

    if args.fanout_only:
        return fanout_only(rt, env, edition_id, redis_url)

    sessions = args.processes * args.threads
    # Three runs now and three after the send (see the module's docstring).
    runs = [ceiling(sink, size, args.ceiling_messages, sessions) for _ in range(3)]
    print(
        f"ceiling: smtp-source, {sessions} connections, {args.ceiling_messages} messages of "
        f"{size} bytes, three runs before the send: " + ", ".join(f"{r:.0f}" for r in runs) + " msg/s",
        flush=True,
    )

    worker = start_workers(env, args.processes, args.threads)
    procs.append(worker)

    from mailer.actors.digest import start_edition
    from mailer.digest.models import Edition

    workers = children(worker.pid)
    cpu0 = sum(cpu_seconds(p) for p in workers)
    sink_cpu0 = cpu_seconds(sink.proc.pid)
    pg_cpu0, redis_cpu0 = postgres_cpu_seconds(), processes_cpu_seconds("redis-server")
    t0 = time.perf_counter()
    before, first = sink.total, None  # when the first copy reached the sink
    rt.queue.send(start_edition, edition_id)
    status, last = "", 0.0
    while time.perf_counter() - t0 < args.timeout:
        time.sleep(0.25)
        if first is None and sink.total > before:
            first = time.perf_counter() - t0
        with rt.db.transaction() as s:
            status = s.get(Edition, edition_id).status
        if status not in ("draft", "sending"):
            break
        if time.perf_counter() - last > 5:
            last = time.perf_counter()
            from mailer.delivery.control import edition_progress

            p = edition_progress(rt.db, edition.period)
            print(f"  {time.perf_counter() - t0:6.1f}s  sent {p.sent}/{p.total}  {p.rate:.0f} msg/s", flush=True)
    elapsed = time.perf_counter() - t0
    cpu = sum(cpu_seconds(p) for p in workers) - cpu0
    sink_cpu = cpu_seconds(sink.proc.pid) - sink_cpu0
    pg_cpu = postgres_cpu_seconds() - pg_cpu0
    redis_cpu = processes_cpu_seconds("redis-server") - redis_cpu0
    rss = peak_rss_mb(workers)
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(60)

    later = [ceiling(sink, size, args.ceiling_messages, sessions) for _ in range(3)]
    ceil = statistics.median(runs + later)
    print(
        "ceiling: three runs after the send: " + ", ".join(f"{r:.0f}" for r in later) + f" msg/s; "
        f"median of the six {ceil:.0f}"
    )

    from mailer.delivery.control import edition_progress

    p = edition_progress(rt.db, edition.period)
    got = sink.recipients()
    got.pop(CEILING_RCPT, None)
    sink.stop()
    missing = sum(1 for e in emails if got.get(e.lower(), 0) == 0)
    duplicates = sum(1 for n in got.values() if n > 1)
    rate = p.sent / elapsed
    if first is not None:
        # The ratio below counts the whole send, fan-out included; this splits it.
        after = p.sent / max(0.001, elapsed - first)
        print(
            f"first copy at the sink {first:.2f}s after the send began (the fan-out and the first claim); "
            f"from then on {after:.0f} msg/s, {after / ceil:.2f} of the ceiling"
        )
    print(f"edition {status} in {elapsed:.1f}s: " + ", ".join(f"{k} {v}" for k, v in sorted(p.counts.items())))
    print(
        f"worker processes {len(workers)} x {args.threads} threads; peak RSS per process {rss:.0f} MB; "
        f"worker CPU {1000 * cpu / max(1, p.sent):.2f} ms/message, smtp-sink CPU "
        f"{1000 * sink_cpu / max(1, p.sent):.2f} ms/message, PostgreSQL {1000 * pg_cpu / max(1, p.sent):.2f}, "
        f"Redis {1000 * redis_cpu / max(1, p.sent):.2f}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; reference loop {reference:.0f} ms before, "
        f"{reference_ms():.0f} ms after"
    )
    # smtp-sink's work a message is the same whatever the workers do, so its CPU a message
    # measures the machine's speed at the time: the workers' CPU as a multiple of it
    # compares runs made minutes apart, when the machine ran at different speeds.
    print(f"worker CPU a message, as a multiple of smtp-sink's: {cpu / max(sink_cpu, 1e-9):.2f}")
    print(
        f"send messages/s={rate:.0f} ceiling={ceil:.0f} ratio={rate / ceil:.2f} "
        f"missing={missing} duplicates={duplicates} peak_rss_mb={rss:.0f}"
    )
    return 0 if status == "sent" and not missing and not duplicates else 1


FANOUT_CHILD = """
import sys, time
from mailer.boot import boot
from mailer.settings import Settings
from mailer.actors.digest import start_edition
boot(Settings.from_env())
t = time.perf_counter()
start_edition(int(sys.argv[1]))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked parent across exec.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(f"{time.perf_counter() - t:.2f} {int(hwm) / 1024:.0f}")
"""


def fanout_only(rt, env: dict, edition_id: int, redis_url: str) -> int:
    """Run the fan-out job as a worker would, in a process of its own; print its time,
    its peak RSS and what it made."""
    import redis

    from mailer.delivery.control import edition_progress
    from mailer.digest.models import Edition

    out = subprocess.run(
        [sys.executable, "-c", FANOUT_CHILD, str(edition_id)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    seconds, rss = out.stdout.split()[-2:]
    with rt.db.transaction() as s:
        period = s.get(Edition, edition_id).period
    p = edition_progress(rt.db, period)
    queued = redis.Redis.from_url(redis_url).llen("dramatiq:digest")
    redis.Redis.from_url(redis_url).flushdb()  # nothing is to be sent
    print(", ".join(f"{k} {v}" for k, v in sorted(p.counts.items())) + f"; {queued} batches enqueued")
    print(
        f"fanout readers={p.total} seconds={float(seconds):.1f} peak_rss_mb={rss} "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    return 0


def seed(session, n: int) -> list[str]:
    from bench.seed import seed as seed_all

    return seed_all(session, n, date.today(), random.Random(6))


def rt_edition():
    from mailer.digest.models import Edition

    return Edition


if __name__ == "__main__":
    sys.exit(main())
