"""Benchmark: a group's archive with many posts: the thread list, a thread, search, and
receiving one post (threading and filing included).

    .venv/bin/python bench/group_archive.py [--posts 20000] [--database-url URL]

Seeds one group with ``--posts`` approved posts in threads of 10 (bulk insert, with the
search index SQLite needs), then times each archive query as the pages run them, median
of 7. Without --database-url a fresh SQLite file (FTS5); with a PostgreSQL URL it DROPS
and recreates schema public there (a scratch database; full-text search over the GIN
index).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MAILER_ENV", "test")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="bench-var-"))
os.environ.pop("REDIS_URL", None)

REPEAT = 7
WORDS = "meeting network event plan staff equality survey training policy race health practice".split()


def timed(fn) -> float:
    runs = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=20_000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    from email import message_from_bytes, policy

    from sqlalchemy import insert, text

    from mailer.db import Database, utcnow
    from mailer.groups import archive, directory, posting, search, service
    from mailer.groups.archive import ANYONE
    from mailer.groups.models import APPROVED, GroupPost
    from mailer.schema import reset
    from mailer.settings import Settings

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-archive-')}/a.db"
    reset(url)
    db = Database(url, info={"suppression_keys": Settings.from_env().suppression_keys})
    with db.transaction() as s:
        group = directory.create_group(s, "bench", "Bench group")
        service.add_members(s, group, ["priya@nhs.example"], basis="consent")
        group_id = group.id
    t0 = time.perf_counter()
    now = utcnow()
    rows = []
    for n in range(1, args.posts + 1):
        root = n - (n - 1) % 10
        words = " ".join(WORDS[(n * k) % len(WORDS)] for k in range(1, 40))
        rows.append(
            {
                "id": n,
                "group_id": group_id,
                "status": APPROVED,
                "author_email": f"member{n % 300}@nhs.example",
                "author_name": f"Member {n % 300}",
                "subject": f"Thread {root} about {WORDS[root % len(WORDS)]}",
                "message_id": f"<m{n}@nhs.example>",
                "thread_id": root,
                "subject_key": f"thread {root}",
                "body_text": f"Message {n}: {words} unique{n}",
                "received_at": now,
                "raw": b"",
            }
        )
    with db.transaction() as s:
        for start in range(0, len(rows), 2000):
            s.execute(insert(GroupPost), rows[start : start + 2000])
        if s.get_bind().dialect.name == "sqlite":
            s.execute(
                text(f"INSERT INTO {search.SQLITE_TABLE} (rowid, subject, body) VALUES (:id, :subject, :body)"),
                [{"id": r["id"], "subject": r["subject"], "body": r["body_text"]} for r in rows],
            )
        else:
            s.execute(text("SELECT setval('group_posts_id_seq', :n)"), {"n": args.posts})
            s.execute(text("ANALYZE group_posts"))
    seeded = time.perf_counter() - t0

    def query(fn):
        def run():
            with db.transaction() as s:
                fn(s, directory.get_group(s, "bench"))

        return run

    results = {
        "threads_page_1": timed(query(lambda s, g: archive.threads(s, g, page=1))),
        "threads_page_40": timed(query(lambda s, g: archive.threads(s, g, page=40))),
        "thread_of_10": timed(query(lambda s, g: archive.thread(s, g, 11))),
        "search_common_word": timed(query(lambda s, g: archive.search_posts(s, g, ANYONE, "meetings"))),
        "search_rare_word": timed(query(lambda s, g: archive.search_posts(s, g, ANYONE, f"unique{args.posts // 2}"))),
    }
    counter = iter(range(10**6))

    def receive_one():
        n = next(counter)
        raw = (
            f"From: Priya <priya@nhs.example>\r\nSubject: RE: Thread 11 about {WORDS[1]}\r\n"
            f"Message-ID: <r{n}@nhs.example>\r\nIn-Reply-To: <m15@nhs.example>\r\n\r\nAgreed, see you there.\r\n"
        ).encode()
        with db.transaction() as s:
            posting.receive(
                s,
                directory.get_group(s, "bench"),
                message_from_bytes(raw, policy=policy.compat32),
                raw,
                "priya@nhs.example",
                list_domain="ertg.example.org",
                max_recipients=25,
            )

    results["receive_thread_and_file_one_post"] = timed(receive_one)
    load = os.getloadavg()[0]
    dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"seeded {args.posts} posts in {seeded:.1f} s ({dialect})")
    print(
        f"group_archive dialect={dialect} posts={args.posts} load={load:.1f} "
        + " ".join(f"{k}_ms={v:.1f}" for k, v in results.items())
    )


if __name__ == "__main__":
    main()
