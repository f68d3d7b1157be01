"""Moderation states: who/when/why, edit keeping the original, featured, withdraw, the
publish window at edition time, and the decision emails."""

from __future__ import annotations

from datetime import date, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer.content import moderation as m
from mailer.content.intake import ItemDraft, submit_item
from mailer.content.models import Item, Partner
from mailer.digest.editions import build_edition, withdraw_item
from mailer.digest.models import Edition
from tests.factories import make_partner, topic_ids


def _submit(rt, pid, **kw):
    with rt.db.transaction() as s:
        t = topic_ids(s)
        draft = ItemDraft(
            title=kw.pop("title", "Heart screening"),
            summary="More patients came forward.",
            link="https://example.org/x",
            kind="news",
            topic_ids=kw.pop("topic_ids", [t["heart-health"]]),
            contact_email="comms@partner.example.org",
            **kw,
        )
        return submit_item(s, s.get(Partner, pid), draft, today=date.today()).id


def test_approve_and_reject_record_who_when_why(rt, session):
    pid, _, _ = make_partner(rt)
    a, b = _submit(rt, pid), _submit(rt, pid, title="Other")
    with rt.db.transaction() as s:
        m.approve(s, a, "amina")
        with pytest.raises(m.ModerationError, match="reason"):
            m.reject(s, b, "amina", "  ")
        m.reject(s, b, "amina", "Out of scope for this campaign.")
    session.expire_all()
    ia, ib = session.get(Item, a), session.get(Item, b)
    assert (ia.status, ia.decided_by) == ("approved", "amina") and ia.decided_at is not None
    assert (ib.status, ib.decision_reason) == ("rejected", "Out of scope for this campaign.")
    assert [(e.action, e.actor, e.reason) for e in ib.events] == [
        ("submitted", "partner:naz-project-london", "via form"),
        ("rejected", "amina", "Out of scope for this campaign."),
    ]
    with rt.db.transaction() as s:
        m.approve(s, a, "amina")  # twice is harmless
        with pytest.raises(m.ModerationError, match="already rejected"):
            m.approve(s, b, "amina")
        with pytest.raises(m.ModerationError, match="already approved"):
            m.reject(s, a, "amina", "changed my mind")
        with pytest.raises(m.ModerationError, match="no item"):
            m.approve(s, 999, "amina")


def test_edit_before_approve_keeps_the_partners_original(rt, session):
    pid, _, _ = make_partner(rt)
    item_id = _submit(rt, pid, body="Original **text**")
    with rt.db.transaction() as s:
        item = s.get(Item, item_id)
        from dataclasses import replace

        m.edit(
            s,
            item_id,
            "amina",
            replace(m.draft_of(item), title="Better title", body="New <script>x</script>"),
            today=date.today(),
            note="clearer headline",
        )
        m.edit(s, item_id, "amina", replace(m.draft_of(item), summary="Shorter."), today=date.today())
    with rt.db.transaction() as s:
        with pytest.raises(m.InvalidInput):  # an edit is checked like a submission
            m.edit(
                s, item_id, "amina", replace(m.draft_of(s.get(Item, item_id)), link="javascript:x"), today=date.today()
            )
    session.expire_all()
    item = session.get(Item, item_id)
    assert (item.title, item.summary) == ("Better title", "Shorter.")
    assert "<script" not in item.body_html
    original = m.original_of(item)
    assert original["title"] == "Heart screening" and original["body_markdown"] == "Original **text**"
    assert [e.action for e in item.events] == ["submitted", "edited", "edited"]
    with rt.db.transaction() as s:
        m.approve(s, item_id, "amina")
        with pytest.raises(m.ModerationError, match="only submitted"):
            m.edit(s, item_id, "amina", m.draft_of(s.get(Item, item_id)), today=date.today())


def test_item_without_topic_cannot_be_approved_until_given_one(rt, session):
    pid, _, _ = make_partner(rt)
    with rt.db.transaction() as s:
        from mailer.content.intake import check_draft, store_item

        draft = ItemDraft(title="From a feed", summary="s", link="https://example.org/f", kind="news", topic_ids=[])
        item_id = store_item(
            s,
            s.get(Partner, pid),
            check_draft(s, draft, today=date.today(), require_topics=False),
            today=date.today(),
            source="feed",
        ).id
    with rt.db.transaction() as s:
        with pytest.raises(m.ModerationError, match="no topic"):
            m.approve(s, item_id, "amina")
    with rt.db.transaction() as s:
        from dataclasses import replace

        m.edit(
            s,
            item_id,
            "amina",
            replace(m.draft_of(s.get(Item, item_id)), topic_ids=[topic_ids(s)["mental-health"]]),
            today=date.today(),
        )
        m.approve(s, item_id, "amina")


def test_featured_and_withdraw_before_sent(rt, session):
    pid, _, _ = make_partner(rt)
    a, b = _submit(rt, pid), _submit(rt, pid, title="Second")
    period = date.today().strftime("%Y-%m")
    with rt.db.transaction() as s:
        m.approve(s, a, "amina")
        m.approve(s, b, "amina")
        m.set_featured(s, a, "amina")
        build_edition(s, period)
    session.expire_all()
    assert session.get(Item, a).featured and session.get(Item, a).edition_id is not None
    with rt.db.transaction() as s:
        withdraw_item(s, b, "amina", "event cancelled")
        build_edition(s, period)  # a rebuild leaves it out
    session.expire_all()
    assert session.get(Item, b).status == "withdrawn" and session.get(Item, b).edition_id is None
    with rt.db.transaction() as s:
        s.scalar(select(Edition)).status = "sending"
    with rt.db.transaction() as s:
        with pytest.raises(m.ModerationError, match="already gone out"):
            withdraw_item(s, a, "amina")
        assert withdraw_item(s, b, "amina").status == "withdrawn"  # twice is harmless
        with pytest.raises(m.ModerationError, match="withdrawn"):
            m.set_featured(s, b, "amina")


def test_edition_takes_only_items_inside_their_publish_window(rt, session):
    pid, _, _ = make_partner(rt)
    today = date.today()
    now = _submit(rt, pid, title="Open window")
    expired = _submit(rt, pid, title="Expires today", publish_until=today.isoformat())
    embargoed = _submit(rt, pid, title="Embargoed", publish_from=(today + timedelta(days=1)).isoformat())
    with rt.db.transaction() as s:
        for i in (now, expired, embargoed):
            m.approve(s, i, "amina")
        s.get(Item, expired).publish_until = today - timedelta(days=1)  # the day has passed since
        build_edition(s, today.strftime("%Y-%m"))
    session.expire_all()
    assert session.get(Item, now).edition_id is not None
    assert session.get(Item, expired).edition_id is None
    assert session.get(Item, embargoed).edition_id is None


def test_cli_decisions_email_the_contact_once(rt, session, app, transport):
    from mailer.cli import main

    pid, _, _ = make_partner(rt)
    a, b = _submit(rt, pid), _submit(rt, pid, title="Not this one")
    run = app.test_cli_runner().invoke
    assert run(main, ["items", "approve", str(a), "--editor", "amina"]).exit_code == 0
    r = run(main, ["items", "reject", str(b), "--reason", "Please add a date & place.", "--editor", "amina"])
    assert r.exit_code == 0, r.output
    assert run(main, ["items", "reject", str(b), "--reason", "again"]).exit_code == 0  # no second email
    subjects = {message_from_bytes(x.data, policy=policy.default)["Subject"]: x for x in transport.messages}
    assert set(subjects) == {"Approved for the digest: Heart screening", "Not accepted for the digest: Not this one"}
    rejected = message_from_bytes(subjects["Not accepted for the digest: Not this one"].data, policy=policy.default)
    assert "Please add a date & place." in rejected.get_body(("plain",)).get_content()
    assert "Please add a date &amp; place." in rejected.get_body(("html",)).get_content()
    assert run(main, ["items", "reject", str(a)]).exit_code != 0  # --reason is required
    out = run(main, ["items", "show", str(b)]).output
    assert "rejected   by amina: Please add a date & place." in out
    assert run(main, ["items", "feature", str(a)]).exit_code == 0
    assert run(main, ["items", "withdraw", str(a), "--reason", "partner asked"]).exit_code == 0
    assert run(main, ["items", "edit", str(b), "--title", "x"]).exit_code == 1


def test_cli_moderation_lands_in_the_console_audit_log(rt, session, app):
    import getpass

    from mailer.cli import main
    from mailer.staff import audit

    pid, _, _ = make_partner(rt)
    a, b = _submit(rt, pid), _submit(rt, pid, title="Not this one")
    run = app.test_cli_runner().invoke
    assert (
        run(main, ["items", "edit", str(a), "--title", "Heart screening in Leeds", "--editor", "amina"]).exit_code == 0
    )
    run(main, ["items", "approve", str(a), "--editor", "amina"])
    run(main, ["items", "approve", str(a), "--editor", "amina"])  # twice: nothing changes, nothing logged
    run(main, ["items", "feature", str(a), "--editor", "amina"])
    run(main, ["items", "withdraw", str(a), "--reason", "partner asked", "--editor", "amina"])
    run(main, ["items", "reject", str(b), "--reason", "Out of scope.", "--editor", "amina"])
    entries = audit.search(session, action="item").entries[::-1]
    me = f"cli:{getpass.getuser()}"
    assert [(e.actor, e.action, e.object_id) for e in entries] == [
        (me, "item.edit", str(a)),
        (me, "item.approve", str(a)),
        (me, "item.feature", str(a)),
        (me, "item.withdraw", str(a)),
        (me, "item.reject", str(b)),
    ]
    assert entries[0].before == {"title": "Heart screening"} and entries[0].after["title"] == "Heart screening in Leeds"
    assert entries[4].after == {"status": "rejected", "reason": "Out of scope.", "editor": "amina"}


def test_word_diff_marks_removed_and_added_words_and_keeps_the_rest():
    from mailer.content.review import word_diff

    assert word_diff("Heart screening in Lambeth", "Heart screening in Leeds and Lambeth") == [
        ("same", "Heart screening in "),
        ("added", "Leeds and "),
        ("same", "Lambeth"),
    ]
    assert word_diff("one two", "one three") == [("same", "one "), ("removed", "two"), ("added", "three")]
    assert word_diff("", "new") == [("added", "new")]
