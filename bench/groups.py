"""Group post benchmark: one post over LMTP to an N-member group, until every copy is in
the relay's hands. PostgreSQL, Redis, real `dramatiq` workers, Postfix smtp-sink.

    python -m bench.groups --members 5000
    python -m bench.groups --members 5000 --digest

With ``--digest`` every member takes the daily digest instead: the post reaches nobody by
itself, then the day's digest job runs (``send_daily_digests``: one render for the group
and day, one personalised copy per member) and the time until every member's digest is
in the relay's hands is measured.

Seeds a group of N members (every-message delivery), starts `dramatiq mailer.worker`
processes and an LMTP receiver (:mod:`mailer.lmtp`) in this process, sends one post with
``smtplib.LMTP`` and times (a) the LMTP answer (the message stored and committed) and (b)
the moment smtp-sink has accepted a copy for every member. smtp-sink's log of every
recipient gives the members who got no copy or more than one.

PostgreSQL and Redis come from TEST_DATABASE_URL / TEST_REDIS_URL (default: the local
servers, database `bench` and Redis db 14). The schema in that database is dropped and
recreated and the Redis db flushed. Needs Debian's `postfix` package for smtp-sink (run as
root, for its chroot). The author's domain is on DMARC_REWRITE_DOMAINS, so no DNS query
is made.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu_seconds
from bench.send import (
    DEFAULT_DB,
    DEFAULT_REDIS,
    Sink,
    children,
    ensure_database,
    peak_rss_mb,
    start_workers,
)
from bench.servers import free_port
from mailer.cli.worker import GREENLETS_DEFAULT

DOMAIN = "ertg.example.org"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=5000)
    ap.add_argument("--processes", type=int, default=2, help="dramatiq worker processes")
    ap.add_argument("--threads", type=int, default=GREENLETS_DEFAULT, help="threads per worker process")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--digest", action="store_true", help="members take the daily digest: time the day's digest")
    args = ap.parse_args(argv)
    db_url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_DB
    redis_url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS
    workdir = Path(tempfile.mkdtemp(prefix="bench-groups-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
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


def seed(session, n: int, delivery: str = "every") -> list[str]:
    """A group of ``n`` active members taking ``delivery`` (bulk insert)."""
    from sqlalchemy import insert

    from mailer.db import utcnow
    from mailer.groups.directory import create_group
    from mailer.groups.models import GroupMember

    group = create_group(session, "bme-network", "BME staff networks", by="bench")
    emails = [f"member{i}@trust{i % 50}.nhs.example" for i in range(n)]
    now = utcnow()
    session.execute(
        insert(GroupMember),
        [
            dict(
                group_id=group.id,
                email=e,
                email_key=e,
                name="",
                role="member",
                delivery=delivery,
                status="active",
                basis="legitimate-interests",
                token_version=1,
                joined_at=now,
            )
            for e in emails
        ],
    )
    return emails


POST = (
    f"From: Priya Shah <priya@nhs.example>\r\nTo: bme-network@{DOMAIN}\r\nSubject: Joint event in March\r\n"
    "Date: Tue, 01 Dec 2026 09:00:00 +0000\r\nMessage-ID: <bench-1@nhs.example>\r\n\r\n"
    + "Shall we plan a joint event with the university's BME staff network? Ideas below.\r\n"
    * 40
).encode()


def _run(args, db_url: str, redis_url: str, workdir: Path, sink: Sink, procs: list) -> int:
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        MAILER_ENV="test",
        SECRET_KEY="bench-secret",
        VAR_DIR=str(workdir / "var"),
        SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
        BASE_URL="https://digest.example.org",
        MAIL_FROM=f"End Racism This Generation <digest@{DOMAIN}>",
        DMARC_REWRITE_DOMAINS="nhs.example",
    )
    os.environ.update(env)  # this process enqueues through the same Redis broker

    import redis

    from mailer.boot import boot
    from mailer.schema import reset
    from mailer.settings import Settings

    print(f"database {db_url}, redis {redis_url}, sink 127.0.0.1:{sink.port}", flush=True)
    redis.Redis.from_url(redis_url).flushdb()
    ensure_database(db_url)
    reset(db_url)
    rt = boot(Settings.from_env())
    with rt.db.transaction() as s:
        mode = "digest" if args.digest else "every"
        emails = seed(s, args.members - 1, mode)
        from mailer.groups.directory import get_group
        from mailer.groups.service import add_members

        add_members(s, get_group(s, "bme-network"), ["priya@nhs.example"], basis="consent", delivery=mode)
    emails.append("priya@nhs.example")
    print(f"seeded a group of {len(emails)} members", flush=True)

    worker = start_workers(env, args.processes, args.threads)
    procs.append(worker)

    from mailer.actors.inbound import process_inbound, router
    from mailer.lmtp import Receiver

    receiver = Receiver(rt.db, router(), lambda i: rt.queue.send(process_inbound, i), port=free_port()).start()
    workers = children(worker.pid)
    cpu0 = sum(cpu_seconds(p) for p in workers)
    t0 = time.perf_counter()
    with smtplib.LMTP("127.0.0.1", receiver.port, timeout=30) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("priya@nhs.example")
        client.rcpt(f"bme-network@{DOMAIN}")
        code, reply = client.data(POST)
    accepted = time.perf_counter() - t0
    receiver.stop()
    print(f"LMTP answered {code} {reply.decode()} after {1000 * accepted:.0f} ms", flush=True)
    if args.digest:
        t0 = _start_daily_digest(rt, args.timeout)
    wanted, last = set(emails), 0.0
    while time.perf_counter() - t0 < args.timeout:
        time.sleep(0.05)
        got = sum(1 for e in emails if sink.counts.get(e, 0))
        if got == len(wanted):
            break
        if time.perf_counter() - last > 2:
            last = time.perf_counter()
            print(f"  {time.perf_counter() - t0:6.1f}s  {got}/{len(wanted)} in the relay's hands", flush=True)
    elapsed = time.perf_counter() - t0
    cpu = sum(cpu_seconds(p) for p in workers) - cpu0
    rss = peak_rss_mb(workers)
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(60)
    got = sink.recipients()
    sink.stop()
    missing = sum(1 for e in emails if got.get(e, 0) == 0)
    duplicates = sum(1 for n in got.values() if n > 1)
    print(
        f"worker processes {len(workers)} x {args.threads} threads; worker CPU "
        f"{1000 * cpu / max(1, len(emails)):.2f} ms/copy; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"groups{' daily digest' if args.digest else ''} members={len(emails)} lmtp_ms={1000 * accepted:.0f} all_in_relay_s={elapsed:.2f} "
        f"copies/s={len(emails) / elapsed:.0f} missing={missing} duplicates={duplicates} peak_rss_mb={rss:.0f}"
    )
    return 0 if code == 250 and not missing and not duplicates else 1


def _start_daily_digest(rt, timeout: float) -> float:
    """Once the post is approved (and delivered to nobody), run today's digest job; the
    moment it was enqueued."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from mailer.actors.groups import send_daily_digests
    from mailer.groups.models import APPROVED, GroupPost

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with rt.db.transaction() as s:
            if s.scalar(select(GroupPost.id).where(GroupPost.status == APPROVED)) is not None:
                break
        time.sleep(0.05)
    today = datetime.now(ZoneInfo(rt.settings.schedule_timezone)).date().isoformat()
    started = time.perf_counter()
    rt.queue.send(send_daily_digests, today)
    print(f"the post is approved; the daily digest of {today} is enqueued", flush=True)
    return started


if __name__ == "__main__":
    sys.exit(main())
