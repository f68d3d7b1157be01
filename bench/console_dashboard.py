"""Benchmark: the dashboard's "last editions" and the bounces page's per-domain failure
rates at 100,000 subscribers with six sent editions (600,000 deliveries).

    .venv/bin/python bench/console_dashboard.py --database-url postgresql+psycopg://...

It DROPS and recreates schema public at the URL (a scratch database), seeds with
set-based SQL, runs ANALYZE, prints each query's EXPLAIN ANALYZE and the median of
seven timed runs of :func:`mailer.delivery.overview.last_editions` and
:func:`mailer.delivery.reports.domain_failure_rates`.
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
EDITIONS = 6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--explain", action="store_true", help="print the plans too")
    ap.add_argument("--no-analyze", action="store_true", help="time before statistics exist (right after a bulk load)")
    args = ap.parse_args()

    from sqlalchemy import text

    from mailer.db import Database
    from mailer.delivery import overview, reports
    from mailer.schema import reset
    from mailer.settings import Settings

    reset(args.database_url)
    db = Database(args.database_url, info={"suppression_keys": Settings.from_env().suppression_keys})
    with db.transaction() as s:
        s.execute(
            text(
                "INSERT INTO subscribers (email, name, organisation, organisation_type, practice_code, status,"
                " token_version, created_at, requested_at, confirmed_at, unsubscribed_at, consent_basis)"
                " SELECT 'r' || g || '@' || (ARRAY['nhs.example','trust-a.example','trust-b.example',"
                "'surgery.example','charity.example','mail.example'])[1 + g % 6], '', '', '', '',"
                " CASE WHEN g % 50 = 0 THEN 'unsubscribed' ELSE 'confirmed' END, 1, now(), now(), now(),"
                " CASE WHEN g % 50 = 0 THEN now() ELSE NULL END, 'consent' FROM generate_series(1, :n) g"
            ),
            {"n": args.rows},
        )
        for i in range(EDITIONS):
            s.execute(
                text(
                    "INSERT INTO editions (period, status, subject, intro, built_at, sent_at, preheader,"
                    " preview_generation) VALUES (:p, 'sent', 'Edition', '', now(), now() - interval '1 day', '', 0)"
                ),
                {"p": f"2026-{i + 1:02}"},
            )
        s.execute(
            text(
                "INSERT INTO deliveries (edition_id, subscriber_id, status, attempts, created_at, updated_at)"
                " SELECT e.id, sub.id, CASE WHEN sub.id % 97 = 0 THEN 'failed' WHEN sub.id % 89 = 0 THEN 'bounced'"
                " ELSE 'sent' END, 1, now(), now() FROM editions e CROSS JOIN subscribers sub"
            )
        )
    if not args.no_analyze:
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))

    def timed(fn) -> float:
        runs = []
        for _ in range(REPEAT):
            with db.transaction() as s:
                t = time.perf_counter()
                fn(s)
                runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    if args.explain:
        from sqlalchemy import event

        plans = []

        def capture(conn, cursor, statement, params, context, executemany):
            if statement.lstrip().upper().startswith("SELECT") and "deliveries" in statement:
                plans.append((statement, params))

        event.listen(db.engine, "before_cursor_execute", capture)
        with db.transaction() as s:
            overview.last_editions(s, 6)
            reports.domain_failure_rates(s)
        event.remove(db.engine, "before_cursor_execute", capture)
        for statement, params in plans:
            with db.engine.connect() as conn:
                raw = conn.connection.driver_connection
                with raw.cursor() as cur:
                    cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    print("\n".join(r[0] for r in cur.fetchall()), "\n")

    last = timed(lambda s: overview.last_editions(s, 6))
    domains = timed(lambda s: reports.domain_failure_rates(s))
    print(f"{args.rows} subscribers, {EDITIONS} editions: last_editions median {last * 1000:.0f} ms,")
    print(f"domain_failure_rates median {domains * 1000:.0f} ms (of {REPEAT} runs); load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
