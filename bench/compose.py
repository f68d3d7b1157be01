"""Benchmark: compose every recipient's complete digest for a large audience.

    python -m bench.compose --subscribers 100000

Seeds a throw-away SQLite database (or ``--database URL``, whose schema is replaced) with
``--topics`` topics, ``--partners`` partners, an edition of ``--items`` approved items and
N confirmed subscribers with random choices, then runs the real path: build the edition,
prepare it once (Jinja2, MJML and the CSS inliner, each timed on its own), load the
recipients, and compose every message to the bytes an SMTP server would receive, without
sending. The compose loop runs pinned to one CPU core. The last line is machine-readable::

    compose messages/s=... mjml_ms=... inline_ms=... median_bytes=... max_bytes=... peak_rss_mb=...

This is a benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from array import array
from datetime import date

from sqlalchemy import insert

from bench import reference_ms

# Words for plausible titles and summaries (the sizes matter, not the prose).
WORDS = (
    "health equality practice staff network partner community trust surgery patients "
    "screening heart mental sexual services minority ethnic pledge progress policy review "
    "tool audit event workshop evening report guidance toolkit outreach support local"
).split()
NAMES = [
    "Amina Rahman",
    "David Okafor",
    "Priya Patel",
    "",
    "Siobhán Ní Bhriain",
    "",
    "Kwame Mensah",
    "عائشہ خان",
    "Joanna Kowalska",
    "",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()


def seed(
    session, rng: random.Random, *, subscribers: int, items: int, topics: int, partners: int, period_start: date
) -> None:
    """Catalogue, approved items dated in the period, and confirmed subscribers, in bulk."""
    from mailer.content.models import APPROVED, Item, Partner, Topic, item_topics
    from subscribers.models import CONFIRMED, Subscriber, subscriber_partners, subscriber_topics

    session.execute(
        insert(Topic),
        [
            {"id": i + 1, "slug": f"topic-{i + 1}", "name": f"Topic {i + 1} " + _sentence(rng, 2), "position": i}
            for i in range(topics)
        ],
    )
    session.execute(
        insert(Partner),
        [
            {
                "id": i + 1,
                "slug": f"partner-{i + 1}",
                "name": f"Partner charity {i + 1}",
                "active": True,
                "website": f"https://partner{i + 1}.example.org",
            }
            for i in range(partners)
        ],
    )
    kinds = ["news", "case_study", "event", "resource", "call_to_action", "pledge_update"]
    rows, links = [], []
    for i in range(items):
        rows.append(
            {
                "id": i + 1,
                "partner_id": rng.randint(1, partners),
                "kind": rng.choice(kinds),
                "title": _sentence(rng, rng.randint(6, 12)),
                "summary": _sentence(rng, rng.randint(25, 45)) + ".",
                "link": f"https://partner.example.org/news/{i + 1}-{_sentence(rng, 3).replace(' ', '-').lower()}",
                "status": APPROVED,
                "dated": period_start.replace(day=rng.randint(1, 28)),
            }
        )
        for t in rng.sample(range(1, topics + 1), rng.randint(1, 2)):
            links.append({"item_id": i + 1, "topic_id": t})
    session.execute(insert(Item), rows)
    session.execute(insert(item_topics), links)
    subs, chosen_t, chosen_p = [], [], []
    for i in range(1, subscribers + 1):
        subs.append(
            {
                "id": i,
                "email": f"member{i}@trust{i % 97}.nhs.example.org",
                "name": rng.choice(NAMES),
                "organisation": "",
                "status": CONFIRMED,
                "token_version": 1,
            }
        )
        ts = rng.sample(range(1, topics + 1), rng.randint(0, 3))
        ps = rng.sample(range(1, partners + 1), rng.randint(0 if ts else 1, 2))
        chosen_t += [{"subscriber_id": i, "topic_id": t} for t in ts]
        chosen_p += [{"subscriber_id": i, "partner_id": p} for p in ps]
        if len(subs) == 20_000:
            _flush(session, subs, chosen_t, chosen_p, Subscriber, subscriber_topics, subscriber_partners)
    _flush(session, subs, chosen_t, chosen_p, Subscriber, subscriber_topics, subscriber_partners)


def _flush(session, subs, chosen_t, chosen_p, Subscriber, subscriber_topics, subscriber_partners):
    if subs:
        session.execute(insert(Subscriber), subs)
    if chosen_t:
        session.execute(insert(subscriber_topics), chosen_t)
    if chosen_p:
        session.execute(insert(subscriber_partners), chosen_p)
    subs.clear(), chosen_t.clear(), chosen_p.clear()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compose", description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=60)
    ap.add_argument("--topics", type=int, default=8)
    ap.add_argument("--partners", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--database",
        help="SQLAlchemy URL to use instead of a temporary SQLite file (its schema is dropped and recreated)",
    )
    args = ap.parse_args(argv)
    reference = reference_ms()

    from mailer.db import Database
    from mailer.digest.compose import compose, prepare_edition
    from mailer.digest.editions import build_edition
    from mailer.schema import reset
    from mailer.settings import Settings
    from subscribers.service import recipients

    tmp = tempfile.mkdtemp(prefix="bench-compose-")
    url = args.database or f"sqlite:///{tmp}/bench.db"
    reset(url)
    settings = Settings.from_env(
        {
            "MAILER_ENV": "test",
            "DATABASE_URL": url,
            "VAR_DIR": tmp,
            "SECRET_KEY": "bench-secret",
            "BASE_URL": "https://digest.example.org",
        }
    )
    db = Database(url, info={"suppression_keys": settings.suppression_keys})
    period = "2026-12"
    rng = random.Random(args.seed)

    t = time.perf_counter()
    with db.transaction() as s:
        seed(
            s,
            rng,
            subscribers=args.subscribers,
            items=args.items,
            topics=args.topics,
            partners=args.partners,
            period_start=date(2026, 12, 1),
        )
    print(
        f"seeded {args.subscribers} subscribers, {args.items} items, {args.topics} topics, "
        f"{args.partners} partners in {time.perf_counter() - t:.1f} s",
        file=sys.stderr,
    )

    with db.transaction() as s:
        edition = build_edition(s, period)
    timings: dict[str, float] = {}
    # MJML's compiler and the inliner are imported on a process's first render (about 0.2 s
    # here): import them now, so mjml_ms and inline_ms time the render itself.
    from mailer.mail.rendering import render_engines

    render_engines()
    with db.transaction() as s:
        t = time.perf_counter()
        prepared = prepare_edition(s, edition, settings, timings=timings)
        prep_s = time.perf_counter() - t
        t = time.perf_counter()
        people = recipients(s)
        load_s = time.perf_counter() - t
    print(
        f"prepared the edition in {prep_s * 1000:.0f} ms "
        + " ".join(f"{k}={v * 1000:.1f}ms" for k, v in timings.items())
        + f"; loaded {len(people)} recipients in {load_s:.1f} s",
        file=sys.stderr,
    )

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, honestly
    sizes = array("I")
    skipped = 0
    t, cpu = time.perf_counter(), time.process_time()
    for person in people:
        envelope = compose(prepared, person)
        if envelope is None:
            skipped += 1
        else:
            sizes.append(len(envelope.data))
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    composed = len(sizes)
    # On a shared machine wall time includes waiting for the core; CPU time does not.
    print(
        f"composed {composed} messages ({skipped} skipped: nothing to read) in {elapsed:.2f} s "
        f"on one core, {elapsed / max(composed, 1) * 1e6:.0f} us each; CPU {cpu:.2f} s, "
        f"{composed / cpu:.0f} messages per CPU-second; load average {os.getloadavg()[0]:.1f}; "
        f"reference loop {reference:.0f} ms before, {reference_ms():.0f} ms after",
        file=sys.stderr,
    )
    sys.stderr.flush()
    print(
        f"compose messages/s={composed / elapsed:.0f} mjml_ms={timings.get('mjml', 0) * 1000:.1f} "
        f"inline_ms={timings.get('inline', 0) * 1000:.1f} "
        f"median_bytes={int(statistics.median(sizes)) if sizes else 0} "
        f"max_bytes={max(sizes) if sizes else 0} peak_rss_mb={_peak_rss_mb():.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
