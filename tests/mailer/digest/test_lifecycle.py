"""Editions move draft -> scheduled -> sending -> sent, or are cancelled; editors edit them
until sending starts; bad input changes nothing."""

from __future__ import annotations

import ast
import functools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer import runtime
from mailer.delivery.models import Delivery
from mailer.digest import lifecycle, status
from mailer.digest.editions import EditionError, build_edition
from mailer.digest.models import Edition
from tests.factories import PERIOD, standard_world


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
    code, out = _cli(
        app,
        "edition",
        "edit",
        PERIOD,
        "--subject",
        "Heart health month",
        "--preheader",
        "Screening, letters and a forum",
        "--intro",
        "Hello all.\nTwo lines.",
        "--featured",
        str(world.items["letter"].id),
    )
    assert code == 0, out
    session.expire_all()
    ed = session.get(Edition, ed.id)
    assert (ed.subject, ed.preheader, ed.intro, ed.featured_item_id) == (
        "Heart health month",
        "Screening, letters and a forum",
        "Hello all.\nTwo lines.",
        world.items["letter"].id,
    )
    code, out = _cli(app, "edition", "show", PERIOD)
    assert "Featured this month" in out and "Heart health month" in out


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"subject": ""}, "must not be empty"),
        ({"subject": "Two\r\nBcc: x@evil.example"}, "line breaks"),
        ({"subject": "x" * 201}, "at most 200"),
        ({"intro": "bell\x07"}, "control characters"),
    ],
)
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
    from mailer.actors.digest import send_due_editions

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
    runtime.current().queue.send(send_due_editions)
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
        status.transition(session, session.get(Edition, ed.id), status.CANCEL)


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


def test_the_cli_will_not_schedule_or_send_an_edition_a_person_changed_until_another_approves(
    world, app, session, queue
):
    ed = build_edition(session, PERIOD)
    ed.changed_by_id = 42  # built in the console by staff account 42
    session.commit()
    for args in (("send", PERIOD), ("schedule", PERIOD, "--at", "2030-01-07 09:00")):
        code, out = _cli(app, "edition", *args)
        assert code == 1 and "must be approved by someone other than the person who last changed it" in out
    session.expire_all()
    assert session.get(Edition, ed.id).status == "draft" and not session.scalars(select(Delivery)).all()
    ed = session.get(Edition, ed.id)
    ed.approved_by_id = 43
    session.commit()
    assert _cli(app, "edition", "schedule", PERIOD, "--at", "2030-01-07 09:00")[0] == 0
    # editing after the approval voids it: the scheduler then leaves the edition unsent
    from mailer.actors.digest import send_due_editions

    assert _cli(app, "edition", "edit", PERIOD, "--subject", "Changed")[0] == 0
    session.execute(Edition.__table__.update().values(scheduled_for=datetime.now(timezone.utc) - timedelta(seconds=1)))
    session.commit()
    runtime.current().queue.send(send_due_editions)
    queue()
    session.expire_all()
    ed = session.get(Edition, ed.id)
    assert (ed.approved_by_id, ed.status) == (None, "scheduled") and not runtime.current().transport.messages
    # the commands' changes are in the audit log beside the console's, under cli:<user>
    from mailer.staff import audit

    entries = audit.search(session, object_type="editions", object_id=str(ed.id)).entries[::-1]
    assert [e.action for e in entries] == ["edition.schedule", "edition.edit"]
    assert all(e.actor.startswith("cli:") for e in entries)
    assert entries[1].before["subject"] == "Your campaign digest - December 2026"
    assert entries[1].after["subject"] == "Changed"


# --- The state machine (mailer.digest.status): the table, its refusals, its one owner ---

# Spelled out here rather than read from the module, so a change to the table shows up as a
# failing test: move -> (the states it moves from, where it leads, states where it is
# allowed and changes nothing).
TABLE = {
    "SCHEDULE": ({"draft"}, "scheduled", set()),
    "UNSCHEDULE": ({"scheduled"}, "draft", set()),
    "START": ({"draft", "scheduled"}, "sending", {"sending", "sent"}),
    "PAUSE": ({"sending"}, "paused", set()),
    "RESUME": ({"paused"}, "sending", set()),
    "RESEND": ({"sent"}, "sending", {"sending"}),
    "FINISH": ({"sending"}, "sent", set()),
    "CANCEL": ({"draft", "scheduled", "sending", "paused"}, "cancelled", set()),
}
STATUSES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")


def _edition_in(session, status: str, period: str = "2030-01") -> Edition:
    ed = Edition(period=period, subject="Subject")
    session.add(ed)
    session.flush()
    # Arranging a state directly, as a test may: the source tree may not (see below).
    session.execute(Edition.__table__.update().where(Edition.__table__.c.id == ed.id).values(status=status))
    session.commit()
    session.expire_all()
    return session.get(Edition, ed.id)


def test_the_transition_table_allows_exactly_these_moves(session):
    from mailer.digest import status as sm

    assert {m.name for m in sm.MOVES} == {getattr(sm, k).name for k in TABLE}
    for i, (key, (sources, to, stays)) in enumerate(TABLE.items()):
        move = getattr(sm, key)
        for j, start in enumerate(STATUSES):
            ed = _edition_in(session, start, period=f"20{30 + i}-{j + 1:02d}")
            extra = {"scheduled_for": datetime(2031, 1, 1, tzinfo=timezone.utc)} if key == "SCHEDULE" else {}
            if start in sources or start in stays:
                assert sm.transition(session, ed, move, **extra) is True, (key, start)
                session.commit()
                expected = to if start in sources else start
            else:
                with pytest.raises(sm.EditionStateError) as refused:
                    sm.transition(session, ed, move, **extra)
                assert (refused.value.status, refused.value.move) == (start, move)
                assert f"is {start}; it cannot " in str(refused.value)
                assert f"({start} -> {to})" in str(refused.value)
                session.rollback()
                expected = start
            session.expire_all()
            assert session.get(Edition, ed.id).status == expected, (key, start)


def test_moves_set_and_clear_their_columns_and_keep_the_object_in_step(session):
    from mailer.digest import status as sm

    ed = _edition_in(session, "draft")
    when = datetime(2031, 1, 1, 9, tzinfo=timezone.utc)
    sm.transition(session, ed, sm.SCHEDULE, scheduled_for=when)
    assert (ed.status, ed.scheduled_for) == ("scheduled", when)  # without a reload
    sm.transition(session, ed, sm.UNSCHEDULE)
    assert (ed.status, ed.scheduled_for) == ("draft", None)
    sm.transition(session, ed, sm.START)
    sm.transition(session, ed.id, sm.FINISH)  # by id, as a worker does
    assert ed.status == "sent" and ed.sent_at is not None
    session.commit()
    session.expire_all()
    row = session.get(Edition, ed.id)
    assert (row.status, row.scheduled_for) == ("sent", None) and row.sent_at is not None
    with pytest.raises(TypeError):
        sm.transition(session, ed, sm.SCHEDULE)  # a scheduled time is needed


def test_a_refused_move_says_which_states_and_changes_nothing(session):
    from mailer.digest import status as sm

    ed = _edition_in(session, "sent")
    with pytest.raises(EditionError) as refused:  # the digest layer's error, so callers catch one type
        sm.transition(session, ed, sm.CANCEL)
    assert str(refused.value) == (
        "The 2030-01 edition is sent; it cannot be cancelled (sent -> cancelled): "
        "only a draft, scheduled, sending or paused edition can."
    )
    with pytest.raises(
        sm.EditionStateError,
        match=r"^The 2030-01 edition is sent; it cannot be paused "
        r"\(sent -> paused\): only a sending edition can\.$",
    ):
        sm.check(ed, sm.PAUSE)
    # Quietly, as the sending worker asks: False, nothing changed.
    assert sm.transition(session, ed.id, sm.PAUSE, quiet=True) is False
    session.commit()
    session.expire_all()
    assert session.get(Edition, ed.id).status == "sent"


def test_a_stale_edition_cannot_overwrite_a_move_made_meanwhile(rt, session):
    """The operator loaded the edition while it was sending; a worker finished it before the
    cancel arrived. The cancel is refused with the state the worker left, not applied."""
    from mailer.digest import status as sm

    ed = _edition_in(session, "sending")
    assert ed.status == "sending"
    with rt.db.transaction() as other:
        sm.transition(other, ed.id, sm.FINISH)
    with pytest.raises(sm.EditionStateError, match="is sent; it cannot be cancelled"):
        sm.transition(session, ed, sm.CANCEL)
    assert ed.status == "sent"  # the object now tells the truth
    session.rollback()
    session.expire_all()
    assert session.get(Edition, ed.id).cancelled_at is None


# The source tree that must not change an edition's status except through the owner.
ROOT = Path(__file__).resolve().parents[3]
OWNER = ROOT / "mailer" / "digest" / "status.py"
LOOKUP = ROOT / "mailer" / "digest" / "editions.py"
# Objects whose ``.status`` other modules may set: items (moderation) and subscribers.
NOT_EDITIONS = {
    "item",
    "sub",
    "job",
    "member",
    "post",
}  # partner items, subscribers, import jobs, group members and posts


def _names_edition(node) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "Edition" for n in ast.walk(node))


def _status_writes(tree: ast.AST) -> list[int]:
    """Line numbers where ``tree`` may write an edition's status: ``x.status = ...`` on
    anything but a known non-edition, ``setattr(x, "status", ...)``, ``Edition(status=...)``,
    and ``update(Edition)...values(status=... | **kw | {...})``."""
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr == "status"
                    and not (isinstance(t.value, ast.Name) and t.value.id in NOT_EDITIONS)
                ):
                    found.append(node.lineno)
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id == "setattr"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "status"
        ):
            found.append(node.lineno)
        if (
            isinstance(func, ast.Name)
            and func.id == "Edition"
            and any(k.arg in ("status", None) for k in node.keywords)
        ):
            found.append(node.lineno)
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "values"
            and _names_edition(func.value)
            and (node.args or any(k.arg in ("status", None) for k in node.keywords))
        ):
            found.append(node.lineno)
    return sorted(found)


def _period_lookups(tree: ast.AST) -> list[int]:
    """Line numbers comparing ``Edition.period ==`` or calling ``filter_by(period=...)``."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Attribute)
            and node.left.attr == "period"
            and _names_edition(node.left)
            and any(isinstance(op, ast.Eq) for op in node.ops)
        ):
            found.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "filter_by"
            and any(k.arg == "period" for k in node.keywords)
        ):
            found.append(node.lineno)
    return sorted(found)


@functools.lru_cache(maxsize=1)  # parsed once for the tests that read every source file
def _sources():
    files = [*(ROOT / "mailer").rglob("*.py"), *(ROOT / "subscribers").rglob("*.py"), ROOT / "scheduler.py"]
    return [(f, ast.parse(f.read_text(), str(f))) for f in files if "migrations" not in f.parts]


def test_the_detectors_see_every_way_of_writing_a_status():
    bad = ast.parse(
        "edition.status = 'sent'\n"
        "ed.status, ed.sent_at = SENT, now\n"
        "setattr(e, 'status', 'paused')\n"
        "Edition(period='2030-01', status='sent')\n"
        "s.execute(update(Edition).where(Edition.id == 1).values(status='sent'))\n"
        "s.execute(update(Edition).values(**changes))\n"
        "s.execute(Edition.__table__.update().values({'status': 'sent'}))\n"
        "s.scalar(select(Edition).where(Edition.period == p))\n"
        "s.query(Edition).filter_by(period=p)\n"
    )
    assert _status_writes(bad) == [1, 2, 3, 4, 5, 6, 7]
    assert _period_lookups(bad) == [8, 9]
    fine = ast.parse(
        "item.status = APPROVED\nsub.status = ERASED\n"
        "update(Delivery).values(status=SENT)\nselect(Edition).where(Edition.status == SENT)\n"
    )
    assert _status_writes(fine) == [] and _period_lookups(fine) == []


def test_only_the_state_machine_writes_an_editions_status():
    writers = {str(f.relative_to(ROOT)): lines for f, tree in _sources() if (lines := _status_writes(tree))}
    assert writers == {str(OWNER.relative_to(ROOT)): writers.get(str(OWNER.relative_to(ROOT)))}
    assert writers[str(OWNER.relative_to(ROOT))], "the owner itself writes it (the detector works)"


def test_one_lookup_of_an_edition_by_period():
    lookups = {str(f.relative_to(ROOT)): lines for f, tree in _sources() if (lines := _period_lookups(tree))}
    assert list(lookups) == [str(LOOKUP.relative_to(ROOT))] and len(lookups[str(LOOKUP.relative_to(ROOT))]) == 1
