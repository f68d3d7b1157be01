"""Editions move draft -> scheduled -> sending -> sent, or are cancelled; editors edit them
until sending starts; bad input changes nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mailer.delivery.models import Delivery
from mailer.digest import lifecycle
from mailer.digest.editions import EditionError, build_edition
from mailer.digest.models import Edition
from tests.digest_world import PERIOD, standard_world


@pytest.fixture
def world(session):
    w = standard_world(session)
    w.subscriber("a@x.org", topics=["sexual-health"])
    w.subscriber("b@x.org", topics=["mental-health"])
    session.commit()
    return w


def _cli(app, *args):
    from mailer.cli import main

    result = app.test_cli_runner().invoke(main, list(args))
    return result.exit_code, result.output


def test_default_subject_and_editor_fields_from_the_cli(world, app, session):
    assert _cli(app, "edition", "build", "--period", PERIOD)[0] == 0
    ed = session.scalar(select(Edition))
    assert ed.subject == "Your campaign digest - December 2026" and ed.status == "draft"
    code, out = _cli(app, "edition", "edit", PERIOD, "--subject", "Heart health month",
                     "--preheader", "Screening, letters and a forum", "--intro", "Hello all.\nTwo lines.",
                     "--featured", str(world.items["letter"].id))
    assert code == 0, out
    session.expire_all()
    ed = session.get(Edition, ed.id)
    assert (ed.subject, ed.preheader, ed.intro, ed.featured_item_id) == (
        "Heart health month", "Screening, letters and a forum", "Hello all.\nTwo lines.", world.items["letter"].id)
    code, out = _cli(app, "edition", "show", PERIOD)
    assert "Featured this month" in out and "Heart health month" in out


@pytest.mark.parametrize("changes, message", [
    ({"subject": ""}, "must not be empty"),
    ({"subject": "Two\r\nBcc: x@evil.example"}, "line breaks"),
    ({"subject": "x" * 201}, "at most 200"),
    ({"intro": "bell\x07"}, "control characters"),
])
def test_bad_edits_are_refused_and_change_nothing(world, session, changes, message):
    ed = build_edition(session, PERIOD)
    session.commit()
    with pytest.raises(EditionError, match=message):
        lifecycle.edit(session, ed, preheader="should not stick", **changes)
    session.rollback()
    session.expire_all()
    assert session.get(Edition, ed.id).preheader == ""


def test_only_the_editions_own_items_can_be_featured(world, session):
    other = world.item("old", "naz", ["sexual-health"], month=10, title="October item")
    ed = build_edition(session, PERIOD)
    with pytest.raises(EditionError, match="not in the 2026-12 edition"):
        lifecycle.edit(session, ed, featured_item_id=other.id)
    with pytest.raises(EditionError):
        lifecycle.edit(session, ed, featured_item_id=999_999)


def test_schedule_then_due_then_send_then_sent(world, session, rt, queue):
    from mailer.delivery.actors import send_due_editions

    ed = build_edition(session, PERIOD)
    now = datetime.now(timezone.utc)
    with pytest.raises(EditionError, match="in the past"):
        lifecycle.schedule(session, ed, now - timedelta(minutes=1))
    lifecycle.schedule(session, ed, now + timedelta(hours=1))
    session.commit()
    assert ed.status == "scheduled"
    assert lifecycle.due(session, now) == []
    # Rebuilding a scheduled edition picks up a new approval and keeps the schedule.
    world.item("new", "minds", ["mental-health"], title="Late approval")
    build_edition(session, PERIOD)
    session.commit()
    assert ed.status == "scheduled"
    assert [e.id for e in lifecycle.due(session, now + timedelta(hours=2))] == [ed.id]

    # Time passes: the scheduler's actor starts it.
    session.execute(Edition.__table__.update().values(scheduled_for=now - timedelta(seconds=1)))
    session.commit()
    send_due_editions.send()
    queue()
    session.expire_all()
    assert session.get(Edition, ed.id).status == "sent"
    assert len(rt.transport.messages) == 2
    # Sending has started: the item list and the editor's fields are frozen.
    with pytest.raises(EditionError, match="frozen"):
        build_edition(session, PERIOD)
    with pytest.raises(EditionError, match="no longer be edited"):
        lifecycle.edit(session, session.get(Edition, ed.id), subject="Too late")
    with pytest.raises(EditionError, match="cannot be cancelled"):
        lifecycle.cancel(session, session.get(Edition, ed.id))


def test_unschedule_returns_to_draft(world, session):
    ed = build_edition(session, PERIOD)
    lifecycle.schedule(session, ed, datetime.now(timezone.utc) + timedelta(days=1))
    lifecycle.unschedule(session, ed)
    assert (ed.status, ed.scheduled_for) == ("draft", None)


def test_cancelling_mid_send_stops_pending_deliveries(world, session, rt, app):
    from mailer.delivery.fanout import start_edition
    from mailer.delivery.sending import deliver_batch
    from mailer.digest.compose import load_plan

    ed = build_edition(session, PERIOD)
    start_edition(session, ed, load_plan(session, ed))
    session.commit()
    ids = [d.id for d in session.scalars(select(Delivery).order_by(Delivery.id))]
    deliver_batch(rt.db, rt.transport, rt.settings, ids[:1])  # one goes out
    code, out = _cli(app, "edition", "cancel", PERIOD, "--yes")
    assert code == 0 and "1 deliveries will not be sent" in out
    # A worker picking up the rest later sends nothing.
    deliver_batch(rt.db, rt.transport, rt.settings, ids)
    session.expire_all()
    assert len(rt.transport.messages) == 1
    assert sorted(d.status for d in session.scalars(select(Delivery))) == ["cancelled", "sent"]
    assert session.get(Edition, ed.id).status == "cancelled"
    code, out = _cli(app, "edition", "send", PERIOD)
    assert code == 1 and "cancelled" in out
