"""Who gets which items, in which sections, in which order; and who is skipped."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer.delivery.fanout import start_edition
from mailer.delivery.models import Delivery
from mailer.digest import lifecycle
from mailer.digest.compose import compose, load_plan, prepare_edition
from mailer.digest.editions import build_edition
from subscribers.service import recipients
from tests.factories import PERIOD, standard_world

TITLES = [
    "PrEP clinic evenings",
    "Heart screening for Asian patients",
    "Letter to the Secretary of State",
    "BME staff networks meet",
    "Sexual health forum",
    "Wellbeing workshop",
]


def _text(envelope) -> str:
    msg = message_from_bytes(envelope.data, policy=policy.default)
    return msg.get_body(("plain",)).get_content().replace("\r\n", "\n")


def _sections(text: str) -> list[str]:
    return re.findall(r"^== (.+) ==$", text, re.M)


def _titles(text: str) -> list[str]:
    return [t for t in TITLES if t in text]


@pytest.fixture
def world(session):
    return standard_world(session)


def _digests(session, rt, **edit):
    edition = build_edition(session, PERIOD)
    if edit:
        lifecycle.edit(session, edition, **edit)
    session.commit()
    prepared = prepare_edition(session, edition, rt.settings)
    return {r.email: compose(prepared, r) for r in recipients(session)}


def test_topics_partners_both_and_neither_get_exactly_their_items(world, session, rt):
    world.subscriber("topic@x.org", topics=["sexual-health"])
    world.subscriber("partner@x.org", partners=["bhf"])
    world.subscriber("both@x.org", topics=["heart-health"], partners=["naz"])
    world.partner("afiya", "Afiya Trust")
    world.subscriber("nothing@x.org", partners=["afiya"])  # follows a partner with no items
    session.commit()
    d = _digests(session, rt)

    assert _titles(_text(d["topic@x.org"])) == [
        "PrEP clinic evenings",
        "Heart screening for Asian patients",
        "Sexual health forum",
    ]
    assert _titles(_text(d["partner@x.org"])) == [
        "Heart screening for Asian patients",
        "Letter to the Secretary of State",
    ]
    both = _text(d["both@x.org"])
    assert sorted(_titles(both)) == sorted(
        [
            "PrEP clinic evenings",
            "Heart screening for Asian patients",
            "Letter to the Secretary of State",
            "Sexual health forum",
        ]
    )
    assert d["nothing@x.org"] is None


def test_each_item_once_under_a_section_the_reader_chose(world, session, rt):
    # "Heart screening" is tagged Sexual health and Heart health: a heart-only reader
    # finds it under Heart health, a reader of both finds it once.
    world.subscriber("heart@x.org", topics=["heart-health"])
    world.subscriber("both@x.org", topics=["sexual-health", "heart-health"])
    session.commit()
    d = _digests(session, rt)
    heart = _text(d["heart@x.org"])
    assert _sections(heart) == ["Heart health"]
    both = _text(d["both@x.org"])
    assert both.count("Heart screening for Asian patients") == 1
    assert _sections(both) == ["Sexual health", "Heart health", "Events and dates"]
    html = message_from_bytes(d["both@x.org"].data, policy=policy.default).get_body(("html",)).get_content()
    assert html.count(">Heart screening for Asian patients<") == 1


def test_section_order_featured_first_topics_by_position_events_by_date(world, session, rt):
    world.subscriber("all@x.org", topics=["sexual-health", "heart-health", "mental-health"])
    session.commit()
    d = _digests(session, rt, featured_item_id=world.items["letter"].id)
    text = _text(d["all@x.org"])
    # Heart health's other item sits under Sexual health (chosen first), and its only own
    # item is featured: so no empty "Heart health" heading.
    assert _sections(text) == ["Featured this month", "Sexual health", "Mental health", "Events and dates"]
    assert text.index("Letter to the Secretary") < text.index("== Sexual health ==")
    assert text.index("Wellbeing workshop") < text.index("Sexual health forum")  # 8th before 20th
    contents = text.split("In this issue:")[1].split("==")[0]
    assert [line[2:] for line in contents.strip().splitlines()] == _sections(text)


def test_featured_item_only_for_readers_it_matches(world, session, rt):
    world.subscriber("mind@x.org", topics=["mental-health"])
    session.commit()
    d = _digests(session, rt, featured_item_id=world.items["letter"].id)
    text = _text(d["mind@x.org"])
    assert "Featured this month" not in text and "Letter to the Secretary" not in text


def test_unsubscribed_and_pending_get_nothing_and_empty_digests_are_recorded_skipped(world, session, rt):
    world.subscriber("reader@x.org", topics=["mental-health"])
    world.subscriber("gone@x.org", topics=["mental-health"], status="unsubscribed")
    world.subscriber("unconfirmed@x.org", topics=["mental-health"], status="pending")
    world.partner("afiya", "Afiya Trust")
    empty = world.subscriber("empty@x.org", partners=["afiya"])
    session.commit()
    edition = build_edition(session, PERIOD)
    result = start_edition(session, edition, load_plan(session, edition))
    session.commit()
    rows = {d.subscriber_id: d.status for d in session.scalars(select(Delivery))}
    assert (result.created, result.skipped) == (1, 1)
    assert rows[empty.id] == "skipped"
    assert len(rows) == 2  # nobody unsubscribed or unconfirmed is even in the ledger


def test_why_names_the_choices(world, session, rt):
    world.subscriber("both@x.org", topics=["sexual-health"], partners=["naz"])
    session.commit()
    text = _text(_digests(session, rt)["both@x.org"])
    assert "you chose Sexual health and Naz Project London" in text
