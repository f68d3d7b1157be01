"""A small, known catalogue for digest tests: topics, partners, items and subscribers
whose expected digests can be worked out by hand."""

from __future__ import annotations

from datetime import date

from mailer.content.models import APPROVED, Item, Partner, Topic
from subscribers.models import CONFIRMED, Subscriber

PERIOD = "2026-12"


class World:
    def __init__(self, session):
        self.s = session
        self.topics = {}
        self.partners = {}
        self.items = {}

    def topic(self, slug, name, position):
        t = Topic(slug=slug, name=name, position=position)
        self.s.add(t)
        self.s.flush()
        self.topics[slug] = t
        return t

    def partner(self, slug, name):
        p = Partner(slug=slug, name=name, website=f"https://{slug}.example.org")
        self.s.add(p)
        self.s.flush()
        self.partners[slug] = p
        return p

    def item(
        self, key, partner, topics, *, kind="news", day=5, title=None, summary="A summary.", status=APPROVED, month=12
    ):
        it = Item(
            partner_id=self.partners[partner].id,
            kind=kind,
            title=title or f"Item {key}",
            summary=summary,
            link=f"https://{partner}.example.org/{key}",
            status=status,
            dated=date(2026, month, day),
            topics=[self.topics[t] for t in topics],
        )
        self.s.add(it)
        self.s.flush()
        self.items[key] = it
        return it

    def subscriber(self, email, topics=(), partners=(), *, name="", status=CONFIRMED):
        sub = Subscriber(
            email=email,
            name=name,
            status=status,
            topics=[self.topics[t] for t in topics],
            partners=[self.partners[p] for p in partners],
        )
        self.s.add(sub)
        self.s.flush()
        return sub


def standard_world(session) -> World:
    """Three topics, three partners, six items (one event pair), committed."""
    w = World(session)
    w.topic("sexual-health", "Sexual health", 0)
    w.topic("heart-health", "Heart health", 1)
    w.topic("mental-health", "Mental health", 2)
    w.partner("naz", "Naz Project London")
    w.partner("bhf", "British Heart Foundation")
    w.partner("minds", "Diverse Minds")
    w.item("prep", "naz", ["sexual-health"], day=3, title="PrEP clinic evenings")
    w.item("screen", "bhf", ["heart-health", "sexual-health"], day=9, title="Heart screening for Asian patients")
    w.item("letter", "bhf", ["heart-health"], day=6, title="Letter to the Secretary of State")
    w.item("network", "minds", ["mental-health"], day=10, title="BME staff networks meet")
    w.item("late-event", "naz", ["sexual-health"], kind="event", day=20, title="Sexual health forum")
    w.item("early-event", "minds", ["mental-health"], kind="event", day=8, title="Wellbeing workshop")
    session.commit()
    return w
