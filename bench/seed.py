"""Bulk data for benchmarks: the demo catalogue, 40 items, and N confirmed subscribers."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mailer.content.models import APPROVED, Item, Partner, Topic
from mailer.db import utcnow
from mailer.demo import seed_demo
from subscribers.models import CONFIRMED, Subscriber, subscriber_partners, subscriber_topics

# Most NHS staff share one mail domain; the rest is a long tail of trusts and charities.
DOMAINS = [
    ("nhs.example", 60),
    ("trust-a.example", 10),
    ("trust-b.example", 8),
    ("surgery.example", 7),
    ("charity.example", 5),
    ("mail.example", 10),
]
EXTRA_ITEMS = 33  # 7 demo items + 33 = a 40-item edition, the size the design is measured at


def seed(session: Session, subscribers: int, today: date, rng: random.Random) -> list[str]:
    """Seed everything an edition needs; returns the subscribers' addresses."""
    seed_demo(session, today)
    topics = list(session.scalars(select(Topic)))
    partners = list(session.scalars(select(Partner)))
    for i in range(EXTRA_ITEMS):
        partner = partners[i % len(partners)]
        session.add(
            Item(
                partner_id=partner.id,
                kind=("news", "event", "tool", "case_study")[i % 4],
                title=f"Bench item {i + 1}: {rng.choice(['Listening', 'Screening', 'Outreach'])} "
                f"work in {rng.choice(['Leeds', 'Bradford', 'Luton', 'Croydon'])}",
                summary=(
                    "A partner reports on what changed for patients and staff, and how other surgeries can take part."
                ),
                link=f"{partner.website}/bench/{i}",
                status=APPROVED,
                dated=today.replace(day=1),
                decided_at=utcnow(),
                decided_by="bench",
                topics=[topics[i % len(topics)]],
            )
        )
    session.flush()
    weights = [w for _, w in DOMAINS]
    emails, rows = [], []
    now = utcnow()
    for n in range(subscribers):
        domain = rng.choices(DOMAINS, weights)[0][0]
        email = f"reader{n}@{domain}"
        emails.append(email)
        rows.append(
            {
                "email": email,
                "name": f"Reader {n}",
                "organisation": "Bench Surgery",
                "status": CONFIRMED,
                "token_version": 1,
                "created_at": now,
                "confirmed_at": now,
            }
        )
    for start in range(0, len(rows), 5000):
        session.execute(insert(Subscriber), rows[start : start + 5000])
    ids = list(
        session.scalars(select(Subscriber.id).where(Subscriber.organisation == "Bench Surgery").order_by(Subscriber.id))
    )
    links, plinks = [], []
    for sid in ids:
        for t in rng.sample(topics, rng.randint(1, 2)):
            links.append({"subscriber_id": sid, "topic_id": t.id})
        if rng.random() < 0.3:
            plinks.append({"subscriber_id": sid, "partner_id": rng.choice(partners).id})
    for start in range(0, len(links), 10000):
        session.execute(insert(subscriber_topics), links[start : start + 10000])
    for start in range(0, len(plinks), 10000):
        session.execute(insert(subscriber_partners), plinks[start : start + 10000])
    return emails
