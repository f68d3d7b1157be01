"""Benchmark: import 100,000 subscribers from CSV (the issue's target: well under a minute).

    .venv/bin/python bench/import.py [--rows 100000] [--database-url URL [--without-foreign-keys]]

Without --database-url it uses a fresh SQLite file in a temporary directory; with a
PostgreSQL URL it DROPS and recreates schema public there, so point it at a scratch
database. It times the import itself (parse, validate, write, commit), not the file making,
and on PostgreSQL prints the CPU the server used meanwhile beside this process's.

``--without-foreign-keys`` (PostgreSQL, a diagnosis, never a way to run the service) drops
the foreign keys of the tables the import writes before it starts. PostgreSQL checks a
foreign key with a query per inserted row, after the row; what that costs an import is the
difference between a run with this flag and one without.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MAILER_ENV", "test")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="bench-var-"))
os.environ.pop("REDIS_URL", None)


def make_csv(path: Path, rows: int, topics: list[str], partners: list[str]) -> None:
    rnd = random.Random(7)
    kinds = ["GP practice", "NHS trust", "BME staff network", "voluntary", "local_authority", "other"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Email", "Name", "Organisation", "Organisation type", "Practice code", "Topics", "Partners"])
        for i in range(rows):
            kind = rnd.choice(kinds)
            w.writerow(
                [
                    f"person{i}@practice{i % 5000}.nhs.example.uk",
                    f"Person {i}",
                    f"Organisation {i % 5000}",
                    kind,
                    f"A{i % 100000:05d}" if kind == "GP practice" else "",
                    ";".join(rnd.sample(topics, rnd.randint(0, 3))),
                    ";".join(rnd.sample(partners, rnd.randint(1, 2))),
                ]
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--without-foreign-keys", action="store_true")
    args = ap.parse_args()
    if args.without_foreign_keys and not (args.database_url or "").startswith("postgresql"):
        ap.error("--without-foreign-keys needs a PostgreSQL --database-url")

    from datetime import date

    from sqlalchemy import func, select

    from bench import postgres_cpu_seconds, reference_ms
    from mailer.db import Database
    from mailer.demo import PARTNERS, TOPICS, seed_demo
    from mailer.schema import reset
    from mailer.settings import Settings
    from subscribers.importer import import_csv
    from subscribers.models import Subscriber

    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    reset(url)
    db = Database(url, info={"suppression_keys": Settings.from_env().suppression_keys})
    with db.transaction() as s:
        seed_demo(s, date.today())
        if args.without_foreign_keys:
            drop_foreign_keys(s)
    path = tmp / "subscribers.csv"
    make_csv(path, args.rows, [t for t, _ in TOPICS], [p for p, _, _ in PARTNERS])

    reference = reference_ms()
    postgres = url.startswith("postgresql")
    server = postgres_cpu_seconds() if postgres else 0.0
    started, cpu = time.perf_counter(), time.process_time()
    with db.transaction() as s, path.open(encoding="utf-8-sig", newline="") as fh:
        report = import_csv(s, fh, source="bench", basis="legitimate-interests")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    server = postgres_cpu_seconds() - server
    with db.transaction() as s:
        total = s.scalar(select(func.count()).select_from(Subscriber))
    c = report.counts
    fks = "  (foreign keys dropped)" if args.without_foreign_keys else ""
    print(f"database: {url.split(':')[0]}  rows: {args.rows}  cores: {os.cpu_count()}{fks}")
    print(f"created {c['created']}, invalid {c['invalid']}; subscribers in database: {total}")
    print(
        f"import took {elapsed:.2f} s wall ({args.rows / elapsed:,.0f} rows/s), "
        f"{cpu:.2f} s CPU in this process"
        + (f", {server:.2f} s in PostgreSQL (all its processes)" if postgres else "")
        + f"; load average {os.getloadavg()[0]:.1f}; "
        f"reference loop {reference:.0f} ms before, {reference_ms():.0f} ms after"
    )
    db.dispose()


def drop_foreign_keys(session) -> None:
    """Drop the foreign keys of the tables an import writes (see the module's docstring)."""
    # Imported here as main's are: the service's modules load after the environment is set.
    from sqlalchemy import text

    from subscribers.models import ConsentEvent, subscriber_partners, subscriber_topics

    for table in (subscriber_topics, subscriber_partners, ConsentEvent.__table__):
        for fk in table.foreign_key_constraints:
            session.execute(text(f"ALTER TABLE {table.name} DROP CONSTRAINT {fk.name}"))


if __name__ == "__main__":
    main()
