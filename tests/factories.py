"""The one place tests arrange data. Every helper writes through the models (or the code a
user would run, such as ``seed-demo``), so arranged rows are rows the service could make.

* :class:`World` and :func:`standard_world`: a small, known catalogue (three topics, three
  partners, six items in :data:`PERIOD`) whose digests can be worked out by hand; add
  subscribers with :meth:`World.subscriber`.
* :func:`make_partner`: one partner ready to submit (submission secret, API token, contact
  address), with the three standard topics in place; :func:`topic_ids` names them.
* :func:`demo`: the demo catalogue of ``mailer seed-demo`` (the ``demo`` fixture).
* :func:`bench_edition`: the 40-item benchmark catalogue of ``bench/seed.py`` with extra
  readers, built into a draft edition (delivery runs long enough to stop mid-way).
* :func:`received_post`: a mail to a group, taken in as the LMTP receiver takes it.
* :func:`checked_import`: an uploaded CSV checked (dry run) and stored as an import job, as
  the console's upload does it.
"""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import select

from mailer.content.models import APPROVED, Item, Partner, Topic
from mailer.content.partners import issue_api_token, rotate_submit_secret
from mailer.mail.message import MessageTemplate
from subscribers import import_jobs
from subscribers.models import CONFIRMED, Subscriber

PERIOD = "2026-12"

# slug, name: the topics of the standard world and of make_partner, in menu order
TOPICS = [("sexual-health", "Sexual health"), ("heart-health", "Heart health"), ("mental-health", "Mental health")]


class World:
    """Rows added through one session, kept by key so a test can name them."""

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
    """Three topics, three partners, six items (one event pair) in :data:`PERIOD`, committed."""
    w = World(session)
    for position, (slug, name) in enumerate(TOPICS):
        w.topic(slug, name, position)
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


def make_partner(rt, slug="naz-project-london", *, trusted=False, feed_url=None, contact="office@partner.example.org"):
    """A partner with the standard topics in place and a registered contact (where notices
    go); returns (partner_id, submit secret, api token)."""
    with rt.db.transaction() as s:
        if s.scalar(select(Topic.id).limit(1)) is None:
            s.add_all([Topic(slug=slug_, name=name, position=i) for i, (slug_, name) in enumerate(TOPICS)])
        p = Partner(
            slug=slug,
            name=slug.replace("-", " ").title(),
            website="https://example.org",
            trusted=trusted,
            feed_url=feed_url,
            contact_email=contact,
            description="",
        )
        s.add(p)
        s.flush()
        secret = rotate_submit_secret(p)
        _, token = issue_api_token(s, p, "tests")
        return p.id, secret, token


def topic_ids(session) -> dict[str, int]:
    return {t.slug: t.id for t in session.scalars(select(Topic))}


def demo(rt, today: date | None = None) -> dict[str, str] | None:
    """The demo catalogue (``mailer seed-demo``): topics, partners, items dated this month
    and three confirmed subscribers, committed; returns each partner's submission secret."""
    from mailer.demo import seed_demo  # an edge module: only the tests that want the demo pay for it

    with rt.db.transaction() as s:
        return seed_demo(s, today or date.today())


def bench_edition(rt, readers: int, *, seed: int = 1, period: str | None = None) -> int:
    """The 40-item benchmark catalogue (``bench/seed.py``) for 3 demo + ``readers`` readers,
    built into a draft edition of ``period`` (default this month); returns its id."""
    from bench.seed import seed as seed_bench  # the benchmark's own seeder, kept with the benchmark
    from mailer.digest.editions import build_edition  # the domain call that makes the draft

    with rt.db.transaction() as s:
        seed_bench(s, readers, date.today(), random.Random(seed))
        return build_edition(s, period or date.today().strftime("%Y-%m")).id


def checked_import(rt, content: str, *, queued: bool = False, created_by: str = "t", **options):
    """Check ``content`` as the console's upload does and commit the job (``queued``: also
    confirmed, waiting for a worker); returns it. The dry run reads inside a savepoint and
    then writes, so on SQLite it needs the write lock up front, as every console POST takes
    it: a plain session there fails with "database is locked" whenever another connection
    (the embedded delivery keeper) commits between the read and the first write."""
    options = {"filename": "f.csv", "basis": "consent", "source": "s", "skip_invalid": True, **options}
    with rt.db.transaction() as s:
        job, _ = import_jobs.check(s, content=content, created_by=created_by, **options)
        if queued:
            import_jobs.queue(s, job)
    return job


def received_post(s, group, raw: bytes, author: str, *, max_recipients: int = 25, **options):
    """``raw`` from ``author`` to ``group`` (a group or its slug), taken in as the group's
    LMTP receiver takes it (``mailer.groups.posting.receive`` on the list domain of the
    tests' settings); returns what it decided. ``options``: receive's own keywords."""
    from email import message_from_bytes, policy

    from mailer.groups import directory, posting

    if isinstance(group, str):
        group = directory.get_group(s, group)
    message = message_from_bytes(raw, policy=policy.compat32)
    return posting.receive(
        s, group, message, raw, author, list_domain="ertg.example.org", max_recipients=max_recipients, **options
    )


def message_template(**kw) -> MessageTemplate:
    """The campaign digest's shared headers (``subject`` and other keywords may differ)."""
    return MessageTemplate(
        mail_from="End Racism This Generation <digest@ertg.example.org>",
        subject=kw.pop("subject", "Your campaign digest - December 2026"),
        list_id="digest.ertg.example.org",
        list_name="Campaign digest",
        list_unsubscribe_mailto="unsubscribe@ertg.example.org",
        **kw,
    )
