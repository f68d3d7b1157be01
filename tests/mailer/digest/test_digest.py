"""Building an edition, choosing each subscriber's items, and rendering once per edition."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy

import pytest

from mailer.content.models import Item, Partner, Topic
from mailer.digest.compose import compose, load_plan, prepare_edition
from mailer.digest.editions import EditionError, build_edition, parse_period
from subscribers.models import Subscriber
from subscribers.service import recipients
from tests.factories import received_post


def _item(s, title, partner, topics, dated, status="approved", kind="news"):
    item = Item(
        partner_id=partner.id,
        kind=kind,
        title=title,
        summary=f"About {title}.",
        link=f"https://example.org/{title.replace(' ', '-')}",
        status=status,
        dated=dated,
        topics=topics,
    )
    s.add(item)
    return item


@pytest.fixture
def catalogue(rt):
    with rt.db.transaction() as s:
        topics = [Topic(slug=f"t{i}", name=f"Topic {i}", position=i) for i in range(3)]
        partners = [Partner(slug=f"p{i}", name=f"Partner {i}") for i in range(2)]
        s.add_all(topics + partners)
    return topics, partners


def test_build_takes_approved_items_of_the_period_once(rt, catalogue):
    topics, (p0, p1) = catalogue
    with rt.db.transaction() as s:
        _item(s, "in period", p0, [topics[0]], date(2026, 11, 3))
        _item(s, "late approval from last month", p0, [topics[0]], date(2026, 10, 30))
        _item(s, "too old", p0, [topics[0]], date(2026, 9, 1))
        _item(s, "next month", p0, [topics[0]], date(2026, 12, 1))
        _item(s, "not approved", p0, [topics[0]], date(2026, 11, 3), status="submitted")
        _item(s, "rejected", p0, [topics[0]], date(2026, 11, 3), status="rejected")
    with rt.db.transaction() as s:
        ed = build_edition(s, "2026-11")
        titles = sorted(i.title for i in load_plan(s, ed).items)
        assert ed.subject == "Your campaign digest - November 2026"
    assert titles == ["in period", "late approval from last month"]
    with rt.db.transaction() as s:
        december = load_plan(s, build_edition(s, "2026-12")).items
    assert [i.title for i in december] == ["next month"]  # November's items are not carried again


def test_rebuilding_a_draft_picks_up_new_approvals_but_a_sending_edition_is_frozen(rt, catalogue):
    topics, (p0, _) = catalogue
    with rt.db.transaction() as s:
        _item(s, "first", p0, [topics[0]], date(2026, 11, 3))
        build_edition(s, "2026-11")
        _item(s, "second", p0, [topics[0]], date(2026, 11, 4))
    with rt.db.transaction() as s:
        ed = build_edition(s, "2026-11")
        assert len(load_plan(s, ed).items) == 2
        ed.status = "sending"
    with rt.db.transaction() as s, pytest.raises(EditionError, match="frozen"):
        build_edition(s, "2026-11")


@pytest.mark.parametrize("period", ["2026-13", "26-11", "2026-1", "", "2026-11; DROP TABLE items"])
def test_malformed_periods_are_refused(period):
    with pytest.raises(EditionError, match="2026-11"):
        parse_period(period)


def _subscriber(s, email, topics=(), partners=(), status="confirmed", name=""):
    sub = Subscriber(email=email, name=name, status=status, topics=list(topics), partners=list(partners))
    s.add(sub)
    return sub


def test_each_recipient_gets_only_their_items_and_nothing_personal_leaks(rt, catalogue):
    (t0, t1, _), (p0, p1) = catalogue
    with rt.db.transaction() as s:
        _item(s, "Heart screening", p0, [t0], date(2026, 11, 2))
        _item(s, "Sexual health group", p1, [t1], date(2026, 11, 3))
        _subscriber(s, "one@example.org", [t0], name="Amina")
        _subscriber(s, "two@example.org", [], [p1])
        _subscriber(s, "three@example.org", [t1], status="pending")
        _subscriber(s, "four@example.org", [t1], status="unsubscribed")
        ed = build_edition(s, "2026-11")
    with rt.db.transaction() as s:
        prepared = prepare_edition(s, ed, rt.settings)
        people = recipients(s)
    assert [p.email for p in people] == ["one@example.org", "two@example.org"]
    one, two = (message_from_bytes(compose(prepared, p).data, policy=policy.default) for p in people)
    one_text = one.get_body(("plain",)).get_content()
    assert "Heart screening" in one_text and "Sexual health group" not in one_text
    assert "Hello Amina," in one_text and "you chose Topic 0" in one_text
    two_html = two.get_body(("html",)).get_content()
    assert "Sexual health group" in two_html and "Heart screening" not in two_html
    assert "Amina" not in two_html and "one@example.org" not in two_html
    assert "Topic 0" not in two_html  # an empty section's heading is left out too
    assert '<html lang="en"' in two_html


def test_partner_fields_reach_the_digest_events_images_and_featured_flag(rt, catalogue):
    """Issue 4's item fields as the reader sees them: event time and place in start order,
    an image with its alt text and width, and an item flagged featured leading the edition."""
    from datetime import datetime

    (t0, _, _), (p0, _) = catalogue
    with rt.db.transaction() as s:
        later = _item(s, "Evening clinic", p0, [t0], date(2026, 11, 2), kind="event")
        later.event_starts_at, later.event_place = datetime(2026, 12, 9, 18, 30), "Naz Centre, Hammersmith"
        sooner = _item(s, "Morning webinar", p0, [t0], date(2026, 11, 20), kind="event")
        sooner.event_starts_at, sooner.event_place = datetime(2026, 12, 2), "Online"
        pic = _item(s, "Pledge wall", p0, [t0], date(2026, 11, 3))
        pic.image_url, pic.image_alt = "https://example.org/wall.jpg", "Staff signing the pledge wall"
        flagged = _item(s, "Flagged story", p0, [t0], date(2026, 11, 4))
        flagged.featured = True
        _subscriber(s, "reader@example.org", [t0])
        ed = build_edition(s, "2026-11")
        assert ed.featured_item_id == flagged.id
    with rt.db.transaction() as s:
        prepared = prepare_edition(s, ed, rt.settings)
        (person,) = recipients(s)
    msg = message_from_bytes(compose(prepared, person).data, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.index("Morning webinar") < text.index("Evening clinic")
    assert "Wed 9 Dec 2026, 18:30, Naz Centre, Hammersmith" in text
    assert "Wed 2 Dec 2026, Online" in text  # no time given, none shown
    assert 'alt="Staff signing the pledge wall"' in html and 'width="552"' in html
    assert html.index("Flagged story") < html.index("Pledge wall")
    assert "Featured this month" in html


def test_what_networks_are_doing_reaches_readers_of_the_groups_topic_only(
    app, rt, session, transport, queue, monkeypatch
):
    """A group that shares (public archive, a topic) lists its month's threads in the
    digest of readers who chose that topic; a members-only group's never appear; hostile
    subjects are data; a bad entry is left out, never the edition."""
    from datetime import datetime, timezone

    from mailer.actors import groups as group_actors
    from mailer.cli import main
    from mailer.groups import directory
    from mailer.groups.models import GroupPost
    from tests.factories import PERIOD, standard_world

    monkeypatch.setattr(group_actors, "resolver", lambda name: [])
    w = standard_world(session)
    w.subscriber("mind@nhs.example", ["mental-health"])
    w.subscriber("heart@nhs.example", ["heart-health"])
    session.commit()
    runner = app.test_cli_runner()

    def cli(*args):
        result = runner.invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    cli("groups", "create", "bme-network", "--name", "BME <staff> networks")
    refused = runner.invoke(main, ["groups", "edit", "bme-network", "--share-with-digest"])
    assert refused.exit_code != 0 and "topic" in refused.output  # a topic first
    cli("groups", "edit", "bme-network", "--topic", "mental-health", "--share-with-digest")
    cli("groups", "create", "private-net", "--name", "Private network", "--visibility", "members")
    refused = runner.invoke(main, ["groups", "edit", "private-net", "--topic", "mental-health", "--share-with-digest"])
    assert refused.exit_code != 0 and "public archive" in refused.output
    with rt.db.transaction() as s:  # as if its archive became members-only after it shared
        private = directory.get_group(s, "private-net")
        private.topic_id, private.share_with_digest = w.topics["mental-health"].id, True
    assert "shared with the digest" in cli("groups", "list")
    for slug in ("bme-network", "private-net"):
        cli("groups", "add", slug, "chair@nhs.example", "--basis", "consent")

    def post(slug, subject, message_id, reply_to=""):
        extra = f"In-Reply-To: {reply_to}\r\n" if reply_to else ""
        raw = f"From: Chair <chair@nhs.example>\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n{extra}\r\nHi\r\n"
        with rt.db.transaction() as s:
            got = received_post(s, slug, raw.encode(), "chair@nhs.example")
            assert got.action == "accept"
            # Approved within the edition's window whenever the test runs (the month before
            # PERIOD is in it: its items reach back there too).
            s.get(GroupPost, got.post_id).decided_at = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
            return got.post_id

    hostile = "<script>alert(1)</script> {{ 7*7 }} {% if 1 %}x{% endif %}"
    root = post("bme-network", "Joint event with the university", "<r@x>")
    post("bme-network", "Re: Joint event with the university", "<r1@x>", "<r@x>")
    post("bme-network", "Re: Joint event with the university", "<r2@x>", "<r1@x>")
    post("bme-network", hostile, "<h@x>")
    post("private-net", "Members only: rota", "<p@x>")

    cli("edition", "build", "--period", PERIOD)
    with rt.db.transaction() as s:
        from mailer.digest.editions import find_edition, set_networks

        ed = find_edition(s, PERIOD)
        assert [n["subject"] for n in ed.networks] == ["Joint event with the university", hostile]
        # A bad entry (a script link, no replies count) is left out; the rest stay.
        kept = set_networks(
            s,
            ed,
            [
                *ed.networks,
                {"group": "X", "subject": "Y", "url": "javascript:alert(1)", "replies": 1, "topic_id": 1},
                {"group": "X", "subject": "Y", "url": "https://x.example", "topic_id": 1},
            ],
        )
        assert kept == 2
    cli("edition", "send", PERIOD, "--wait")
    queue()
    copies = {m.recipient: message_from_bytes(m.data, policy=policy.default) for m in transport.messages}
    mind, heart = copies["mind@nhs.example"], copies["heart@nhs.example"]
    text = mind.get_body(("plain",)).get_content()
    html = mind.get_body(("html",)).get_content()
    assert "== What networks are doing ==" in text
    assert (
        "Joint event with the university" in text and "Group thread from BME <staff> networks\r\n2 replies\r\n" in text
    )
    assert f"https://digest.example.org/groups/bme-network/threads/{root}" in text
    assert "Members only: rota" not in text and "Private network" not in text  # never a members-only group's
    assert hostile in text  # template syntax stays text, exactly as written
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "BME &lt;staff&gt; networks" in html
    assert "What networks are doing" in html
    heart_text = heart.get_body(("plain",)).get_content()
    assert "What networks are doing" not in heart_text and "Joint event" not in heart_text  # not their topic
