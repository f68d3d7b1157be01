"""Benchmark: the console's subscriber search over 100,000 subscribers (the issue asks for
the timing of a search on 100,000).

    .venv/bin/python bench/console_search.py [--rows 100000] [--database-url URL]

Seeds the demo catalogue and ``--rows`` subscribers through the importer (varied
organisations, practice codes, topics and partners; see bench/import.py), then times each
kind of search the console offers: one page of 50 plus the count of all matches, as
:func:`subscribers.search.search` runs them. Without --database-url a fresh SQLite file;
with a PostgreSQL URL it DROPS and recreates schema public there (a scratch database).
"""

from __future__ import annotations

import argparse
import importlib.util
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    from datetime import date

    from sqlalchemy import select, text

    from mailer.content.models import Partner, Topic
    from mailer.db import Database
    from mailer.demo import PARTNERS, TOPICS, seed_demo
    from mailer.schema import reset
    from mailer.settings import Settings
    from subscribers.importer import import_csv
    from subscribers.models import Subscriber
    from subscribers.search import Filter, search

    # bench/import.py's CSV maker (its file name is a keyword, so it is loaded by path)
    spec = importlib.util.spec_from_file_location("bench_import", Path(__file__).with_name("import.py"))
    bench_import = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_import)

    tmp = Path(tempfile.mkdtemp(prefix="bench-search-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    reset(url)
    db = Database(url, info={"suppression_keys": Settings.from_env().suppression_keys})
    with db.transaction() as s:
        seed_demo(s, date.today())
    path = tmp / "subscribers.csv"
    bench_import.make_csv(path, args.rows, [t for t, _ in TOPICS], [p for p, _, _ in PARTNERS])
    with db.transaction() as s, path.open(encoding="utf-8-sig", newline="") as fh:
        import_csv(s, fh, source="bench", basis="legitimate-interests")
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))

    with db.sessions() as s:
        heart = s.scalar(select(Topic.id).where(Topic.slug == "heart-health"))
        afiya = s.scalar(select(Partner.id).where(Partner.slug == "afiya-trust"))
        some_code = s.scalar(select(Subscriber.practice_code).where(Subscriber.practice_code != "").limit(1))
        cases = {
            "everyone, page 1": (Filter(), 1),
            "everyone, page 1000": (Filter(), 1000),
            "exact address": (
                Filter(text=f"person{args.rows // 2}@practice{(args.rows // 2) % 5000}.nhs.example.uk"),
                1,
            ),
            "text 'organisation 123'": (Filter(text="organisation 123"), 1),
            "text 'person9999'": (Filter(text="person9999"), 1),
            "practice code": (Filter(practice_code=some_code), 1),
            "status confirmed + topic": (Filter(status="confirmed", topic_id=heart), 1),
            "topic + partner": (Filter(topic_id=heart, partner_id=afiya), 1),
        }
        print(f"database: {url.split(':')[0]}  subscribers: {args.rows}  cores: {os.cpu_count()}")
        for name, (f, page) in cases.items():
            times = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                result = search(s, f, page=page, per_page=50)
                times.append((time.perf_counter() - started) * 1000)
            print(
                f"{name:28s} {result.total:7d} matches  median {statistics.median(times):7.1f} ms  "
                f"max {max(times):7.1f} ms"
            )
    print(f"load average {os.getloadavg()[0]:.1f}")
    db.dispose()


if __name__ == "__main__":
    main()
