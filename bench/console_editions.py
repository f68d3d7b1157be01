"""Benchmark: the console's editions pages over a large audience.

    python -m bench.console_editions --subscribers 100000 [--database URL]

Seeds a throw-away SQLite database (or ``--database URL``, whose schema is replaced) as
``bench.compose`` does, builds the edition and fans it out (the ledger then holds one row
per reader), and times what the pages ask of the database: the recipients preview
(``mailer.delivery.audience``: the fan-out run and rolled back, plus the reasons), and the
ledger's search by part of an address, its last page, and a status filter. The last line
is machine-readable::

    console_editions audience_s=... ledger_search_ms=... ledger_last_page_ms=... ledger_status_ms=...

This is a benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date


def _best(fn, runs: int = 3) -> float:
    """The fastest of ``runs`` calls, in seconds (the first warms the caches)."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.console_editions", description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database", help="SQLAlchemy URL instead of a temporary SQLite file (its schema is replaced)")
    args = ap.parse_args(argv)

    from bench.compose import seed
    from mailer.db import Database
    from mailer.delivery.audience import audience
    from mailer.delivery.fanout import start_edition
    from mailer.delivery.history import ledger
    from mailer.digest.compose import load_plan
    from mailer.digest.editions import build_edition
    from mailer.schema import reset
    from mailer.settings import Settings

    tmp = tempfile.mkdtemp(prefix="bench-console-")
    url = args.database or f"sqlite:///{tmp}/bench.db"
    reset(url)
    settings = Settings.from_env(
        {"MAILER_ENV": "test", "DATABASE_URL": url, "VAR_DIR": tmp, "SECRET_KEY": "bench-secret"}
    )
    db = Database(url, info={"suppression_keys": settings.suppression_keys})
    with db.transaction() as s:
        seed(
            s,
            random.Random(args.seed),
            subscribers=args.subscribers,
            items=60,
            topics=8,
            partners=6,
            period_start=date(2026, 12, 1),
        )
    with db.transaction() as s:
        edition = build_edition(s, "2026-12")
        edition_id = edition.id
        plan = load_plan(s, edition)
        audience_s = _best(lambda: audience(s, edition, plan))
        start_edition(s, edition, plan)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    with db.transaction() as s:
        total = ledger(s, edition_id, per_page=50).total
        search = _best(lambda: ledger(s, edition_id, search="member4242@", per_page=50))
        last = _best(lambda: ledger(s, edition_id, page=-(-total // 50), per_page=50))
        status = _best(lambda: ledger(s, edition_id, status="skipped", per_page=50))
    print(f"{args.subscribers} subscribers, ledger of {total} on {db.engine.dialect.name}", file=sys.stderr)
    print(
        f"console_editions audience_s={audience_s:.2f} ledger_search_ms={search * 1000:.0f} "
        f"ledger_last_page_ms={last * 1000:.0f} ledger_status_ms={status * 1000:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
