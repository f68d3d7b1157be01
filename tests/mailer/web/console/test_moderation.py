"""The moderation inbox under /admin/moderation: who may use it, claims between two
moderators, approve (one and many), reject with a reason template, edit with the
partner's original kept as a diff, feature, withdraw, filters and pages, the partner's
history, rejection reason templates, and an audit entry for every action."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from mailer.content import reasons
from mailer.content.intake import ItemDraft, submit_item
from mailer.content.models import Item, Partner, RejectionReason
from mailer.staff import audit
from mailer.staff.claims import CLAIM_MINUTES
from mailer.staff.permissions import ITEMS_MODERATE, ROLE_PERMISSIONS, ROLES
from tests.conftest import csrf_token
from tests.factories import make_partner, topic_ids
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures shared with the console tests)


def submit(rt, pid, title="Heart screening in Lambeth", kind="news", topics=("heart-health",), **kw):
    with rt.db.transaction() as s:
        t = topic_ids(s)
        draft = ItemDraft(
            title=title,
            summary=kw.pop("summary", "More patients came forward after the campaign."),
            link="https://example.org/news",
            kind=kind,
            topic_ids=[t[x] for x in topics],
            contact_email="comms@partner.example.org",
            **kw,
        )
        return submit_item(s, s.get(Partner, pid), draft, today=date.today()).id


@pytest.fixture
def items(rt):
    """Three items waiting: two from Naz, one from the BHF without a topic."""
    naz, _, _ = make_partner(rt)
    bhf, _, _ = make_partner(rt, "british-heart-foundation", contact="press@bhf.example.org")
    ids = {
        "naz": naz,
        "bhf": bhf,
        "a": submit(rt, naz),
        "b": submit(rt, naz, "Sexual health clinic hours", topics=("sexual-health",)),
        "c": submit(rt, bhf, "No topic yet"),
    }
    with rt.db.transaction() as s:
        s.get(Item, ids["c"]).topics = []  # as a feed entry whose categories matched no topic
    return ids


def logged_in(app, user, clk):
    c = app.test_client()
    log_in(c, user, clk)
    return c


def post(client, url, **data):
    token = csrf_token(client.get("/admin/").text)
    return client.post(url, data={"csrf_token": token, **data})


def entries(session, action):
    session.expire_all()
    return [e for e in audit.search(session, action=action, per_page=500).entries[::-1]]


def item(session, item_id) -> Item:
    session.expire_all()
    return session.get(Item, item_id)


# --- who may use it ---------------------------------------------------------------------


ACTIONS = ("claim", "release", "approve", "reject", "feature", "withdraw", "edit")


def test_logged_out_every_page_goes_to_login_and_every_action_changes_nothing(app, client, items, session):
    for path in ("/admin/moderation", f"/admin/moderation/items/{items['a']}", "/admin/moderation/reasons"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), path
    token = csrf_token(client.get("/admin/login").text)
    for action in ACTIONS:
        r = client.post(f"/admin/moderation/items/{items['a']}/{action}", data={"csrf_token": token, "reason": "1"})
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), action
    r = client.post("/admin/moderation/approve", data={"csrf_token": token, "item": [items["a"], items["b"]]})
    assert r.status_code == 302
    assert {item(session, i).status for i in (items["a"], items["b"])} == {"submitted"}
    assert entries(session, "item") == []


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_moderate_exactly_as_its_permissions_say(app, staff, clock, items, session, role):  # noqa: F811
    user = staff[role]
    if role in ("moderator", "viewer"):
        user.totp_secret = None
    c = logged_in(app, user, clock)
    allowed = ITEMS_MODERATE in ROLE_PERMISSIONS[role]
    for path in ("/admin/moderation", f"/admin/moderation/items/{items['a']}", "/admin/moderation/reasons"):
        assert c.get(path).status_code == (200 if allowed else 403), (role, path)
    assert ('href="/admin/moderation"' in c.get("/admin/").text) == allowed
    r = post(c, f"/admin/moderation/items/{items['a']}/approve")
    assert r.status_code == (302 if allowed else 403)
    assert item(session, items["a"]).status == ("approved" if allowed else "submitted")
    r = post(c, "/admin/moderation/reasons", **{"new-title": "Spam", "new-text": "Not for us."})
    assert r.status_code == (302 if allowed else 403)
    assert (session.scalar(select(RejectionReason.id)) is not None) == allowed


# --- the inbox list ---------------------------------------------------------------------


def test_the_inbox_lists_waiting_items_oldest_first_with_filters_and_pages(app, staff, clock, items, session, rt):  # noqa: F811
    for i in range(27):
        submit(rt, items["naz"], f"Bulk item {i:02}", kind="resource", topics=("mental-health",))
    c = logged_in(app, staff["editor"], clock)
    page = c.get("/admin/moderation").text
    assert "30 items; page 1 of 2." in page
    titles = re.findall(r'<a href="/admin/moderation/items/\d+">([^<]+)</a>', page)
    assert titles[:3] == ["Heart screening in Lambeth", "Sexual health clinic hours", "No topic yet"]
    assert len(titles) == 25
    more = c.get("/admin/moderation?page=2").text
    assert len(re.findall(r'<a href="/admin/moderation/items/\d+">', more)) == 5 and "Bulk item 26" in more

    def listed(query):
        return re.findall(
            r'<a href="/admin/moderation/items/\d+">([^<]+)</a>', c.get("/admin/moderation?" + query).text
        )

    assert listed(f"partner={items['bhf']}") == ["No topic yet"]
    t = topic_ids(session)
    assert listed(f"topic={t['sexual-health']}") == ["Sexual health clinic hours"]
    assert len(listed("kind=resource")) == 25 and "Heart screening in Lambeth" not in listed("kind=resource")
    assert listed("status=approved") == []
    # filters survive paging
    assert 'href="/admin/moderation?page=2&amp;kind=resource"' in c.get("/admin/moderation?kind=resource").text
    # nonsense in the query string is ignored, not an error
    assert c.get("/admin/moderation?partner=x&topic=&kind=<b>&page=-3").status_code == 200


def test_hostile_partner_text_is_shown_as_text(app, staff, clock, items, rt):  # noqa: F811
    bad = submit(rt, items["naz"], '<script>alert("x")</script> {{ 7*7 }}', summary="<img src=x onerror=alert(1)>")
    c = logged_in(app, staff["moderator"], clock)
    for path in ("/admin/moderation", f"/admin/moderation/items/{bad}"):
        html = c.get(path).text
        assert "<script>alert" not in html and "&lt;script&gt;alert" in html
        assert "{{ 7*7 }}" in html and "<img src=x" not in html


# --- claims -----------------------------------------------------------------------------


def test_a_claim_shows_who_works_on_an_item_and_stops_the_others_until_it_lapses(app, staff, clock, items, session):  # noqa: F811
    amina = logged_in(app, staff["editor"], clock)
    mo_user = staff["moderator"]
    mo_user.totp_secret = None
    session.commit()
    mo = logged_in(app, mo_user, clock)
    a = items["a"]
    r = post(amina, f"/admin/moderation/items/{a}/claim")
    assert r.status_code == 302
    mine = amina.get(f"/admin/moderation/items/{a}").text
    assert "You, until" in mine and "Release it" in mine and "You are working on this item" in mine

    theirs = mo.get(f"/admin/moderation/items/{a}").text
    assert "editor, since" in theirs and ">Approve<" not in theirs and "Claim it" not in theirs
    assert "editor, since" in mo.get("/admin/moderation").text
    for action, data in (("approve", {}), ("reject", {"reason": "other", "extra": "No"}), ("claim", {})):
        r = post(mo, f"/admin/moderation/items/{a}/{action}", **data)
        assert r.status_code == 409 and "editor is working on item" in r.text, action
    assert item(session, a).status == "submitted"
    # bulk approve skips it too, and says why
    r = post(mo, "/admin/moderation/approve", item=[a], back="/admin/moderation")
    assert "editor is working on item" in mo.get(r.headers["Location"]).text
    assert item(session, a).status == "submitted"

    for _ in range(CLAIM_MINUTES - 1):  # Amina went to a meeting (both stay logged in)
        clock.t += 60
        assert amina.get("/admin/").status_code == mo.get("/admin/").status_code == 200
    assert "editor, since" in mo.get(f"/admin/moderation/items/{a}").text  # not yet lapsed
    clock.t += 61
    assert post(mo, f"/admin/moderation/items/{a}/claim").status_code == 302
    assert post(amina, f"/admin/moderation/items/{a}/approve").status_code == 409
    assert post(mo, f"/admin/moderation/items/{a}/approve").status_code == 302
    assert (item(session, a).status, item(session, a).decided_by) == ("approved", "moderator")
    assert "Nobody" in mo.get(f"/admin/moderation/items/{a}").text  # a decision ends the claim
    assert [(e.actor, e.action) for e in entries(session, "item")] == [
        ("editor", "item.claim"),
        ("moderator", "item.claim"),
        ("moderator", "item.approve"),
    ]


def test_releasing_a_claim_lets_the_next_moderator_in(app, staff, clock, items, session):  # noqa: F811
    amina = logged_in(app, staff["editor"], clock)
    admin = logged_in(app, staff["admin"], clock)
    post(amina, f"/admin/moderation/items/{items['b']}/claim")
    assert post(admin, f"/admin/moderation/items/{items['b']}/release").status_code == 302
    assert "editor, since" in admin.get(f"/admin/moderation/items/{items['b']}").text  # not theirs to release
    post(amina, f"/admin/moderation/items/{items['b']}/release")
    assert post(admin, f"/admin/moderation/items/{items['b']}/claim").status_code == 302
    assert [(e.actor, e.action) for e in entries(session, "item")] == [
        ("editor", "item.claim"),
        ("editor", "item.release"),
        ("admin", "item.claim"),
    ]


# --- decisions --------------------------------------------------------------------------


def test_approving_one_item_is_audited_and_tells_the_partner(app, staff, clock, items, session, transport, queue):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    r = post(c, f"/admin/moderation/items/{items['a']}/approve")
    assert r.headers["Location"] == f"/admin/moderation/items/{items['a']}"
    assert "Approved. The next edition can carry it." in c.get(r.headers["Location"]).text
    (entry,) = entries(session, "item.approve")
    assert (entry.actor, entry.ip, entry.object_type, entry.object_id) == (
        "editor",
        "127.0.0.1",
        "items",
        str(items["a"]),
    )
    assert (entry.before, entry.after) == ({"status": "submitted"}, {"status": "approved"})
    queue()
    assert [m.recipient for m in transport.messages] == ["office@partner.example.org"]
    assert "Approved for the digest" in transport.messages[0].data.decode()


def test_bulk_approve_approves_what_it_can_and_says_why_not_for_the_rest(app, staff, clock, items, session, queue):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    r = post(
        c,
        "/admin/moderation/approve",
        item=[items["a"], items["b"], items["c"], "999", "x"],
        back="/admin/moderation?status=submitted",
    )
    assert r.headers["Location"] == "/admin/moderation?status=submitted"
    # The two partner notices are sent by the queue's threads: let them finish, or on SQLite
    # one may commit between the next request's first read and its first write ("database
    # is locked": a WAL snapshot cannot be upgraded to a write once another write landed).
    queue()
    page = c.get(r.headers["Location"]).text
    assert "Approved 2 items." in page
    assert f"Item {items['c']} was not approved: Item {items['c']} has no topic yet" in page
    assert "Item 999 was not approved: There is no item 999." in page
    assert [item(session, i).status for i in (items["a"], items["b"], items["c"])] == [
        "approved",
        "approved",
        "submitted",
    ]
    assert [e.object_id for e in entries(session, "item.approve")] == [str(items["a"]), str(items["b"])]
    # the page it returns to is always inside the inbox
    r = post(c, "/admin/moderation/approve", item=[items["c"]], back="https://evil.example/")
    assert r.headers["Location"] == "/admin/moderation"


def test_reject_with_a_reason_template_and_words_of_ones_own(app, staff, clock, items, session, transport, queue):  # noqa: F811
    reasons.seed_starters(session)
    session.commit()
    scope = session.scalar(select(RejectionReason).where(RejectionReason.title == "Out of scope"))
    c = logged_in(app, staff["editor"], clock)
    page = c.get(f"/admin/moderation/items/{items['a']}").text
    assert "Out of scope" in page and "falls outside what the campaign" in page

    r = post(c, f"/admin/moderation/items/{items['a']}/reject", reason="")
    assert r.status_code == 400 and "Choose a reason." in r.text
    r = post(c, f"/admin/moderation/items/{items['a']}/reject", reason="other", extra="  ")
    assert r.status_code == 400 and "Write the reason for the partner." in r.text
    assert item(session, items["a"]).status == "submitted"

    r = post(c, f"/admin/moderation/items/{items['a']}/reject", reason=str(scope.id), extra="Try the regional list.")
    assert r.status_code == 302
    got = item(session, items["a"])
    assert got.status == "rejected"
    assert got.decision_reason == scope.text + "\n\nTry the regional list."
    (entry,) = entries(session, "item.reject")
    assert entry.after == {"status": "rejected", "reason": got.decision_reason}
    queue()
    assert "Try the regional list." in transport.messages[-1].data.decode()

    post(c, f"/admin/moderation/items/{items['b']}/reject", reason="other", extra="Duplicate of item 1.")
    assert item(session, items["b"]).decision_reason == "Duplicate of item 1."
    # a decided item offers no more decisions, and refuses them
    assert ">Approve<" not in c.get(f"/admin/moderation/items/{items['a']}").text
    r = post(c, f"/admin/moderation/items/{items['a']}/approve")
    assert r.status_code == 400 and "already rejected" in r.text


def test_feature_and_withdraw_are_audited(app, staff, clock, items, session):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    post(c, f"/admin/moderation/items/{items['a']}/approve")
    assert post(c, f"/admin/moderation/items/{items['a']}/feature", featured="1").status_code == 302
    assert item(session, items["a"]).featured
    assert "Stop featuring it" in c.get(f"/admin/moderation/items/{items['a']}").text
    post(c, f"/admin/moderation/items/{items['a']}/feature", featured="0")
    assert not item(session, items["a"]).featured
    r = post(c, f"/admin/moderation/items/{items['a']}/withdraw", reason="The event was cancelled.")
    assert r.status_code == 302 and item(session, items["a"]).status == "withdrawn"
    # withdrawing needs an approved item
    r = post(c, f"/admin/moderation/items/{items['b']}/withdraw", reason="")
    assert r.status_code == 400 and "only approved items can be withdrawn" in r.text
    assert [(e.action, e.before, e.after) for e in entries(session, "item") if e.action != "item.approve"] == [
        ("item.feature", {"featured": False}, {"featured": True}),
        ("item.unfeature", {"featured": True}, {"featured": False}),
        ("item.withdraw", {"status": "approved"}, {"status": "withdrawn", "reason": "The event was cancelled."}),
    ]


# --- editing and the diff ---------------------------------------------------------------


def test_an_edit_keeps_the_partners_original_and_shows_what_changed(app, staff, clock, items, session):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    a = items["a"]
    form = c.get(f"/admin/moderation/items/{a}/edit").text
    assert 'value="Heart screening in Lambeth"' in form
    t = topic_ids(session)
    data = {
        "kind": "news",
        "title": "Heart screening in Lambeth and Southwark",
        "summary": "More patients came forward after the spring campaign.",
        "link": "https://example.org/news",
        "topics": [t["heart-health"], t["health-inequalities"] if "health-inequalities" in t else t["mental-health"]],
        "contact_email": "comms@partner.example.org",
        "note": "Added the second borough",
    }
    r = post(c, f"/admin/moderation/items/{a}/edit", **{**data, "link": "javascript:alert(1)"})
    assert r.status_code == 400 and "must be a full web address" in r.text
    assert item(session, a).original is None  # a refused edit changes nothing
    r = post(c, f"/admin/moderation/items/{a}/edit", **data)
    assert r.status_code == 302
    got = item(session, a)
    assert got.title == "Heart screening in Lambeth and Southwark" and '"Heart screening in Lambeth"' in got.original
    page = c.get(f"/admin/moderation/items/{a}").text
    assert "Changes from the partner's original" in page
    assert (
        '<ins><span class="visually-hidden">[added: </span> and Southwark<span class="visually-hidden">]</span></ins>'
        in page
    )
    assert '<ins><span class="visually-hidden">[added: </span>spring ' in page
    (entry,) = entries(session, "item.edit")
    assert entry.before["title"] == "Heart screening in Lambeth"
    assert entry.after["title"] == "Heart screening in Lambeth and Southwark"
    assert entry.after["note"] == "Added the second borough" and "link" not in entry.after
    # a second edit keeps the partner's first version as the original
    post(c, f"/admin/moderation/items/{a}/edit", **{**data, "title": "Heart screening: two boroughs"})
    assert '"Heart screening in Lambeth"' in item(session, a).original


def test_the_item_page_shows_the_partners_history(app, staff, clock, items, session):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    post(c, f"/admin/moderation/items/{items['b']}/reject", reason="other", extra="Not this month.")
    page = c.get(f"/admin/moderation/items/{items['a']}").text
    history = page.split("history</h2>", 1)[1]
    assert "Items from this partner, by status (2 in all)" in history
    assert "Sexual health clinic hours</a> (rejected," in history and "Not this month." in history
    assert "Heart screening in Lambeth</a>" not in history  # not the item being read


# --- rejection reasons ------------------------------------------------------------------


def test_reason_templates_are_added_changed_and_deleted_with_an_audit_entry_each(app, staff, clock, items, session):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    assert post(c, "/admin/moderation/reasons", **{"new-title": "", "new-text": "x"}).status_code == 400
    post(c, "/admin/moderation/reasons", **{"new-title": "Spam", "new-text": "This looks like spam."})
    r = post(c, "/admin/moderation/reasons", **{"new-title": "spam", "new-text": "again"})
    assert r.status_code == 400 and "There is already a reason called" in r.text
    row = session.scalar(select(RejectionReason))
    r = post(
        c,
        f"/admin/moderation/reasons/{row.id}",
        **{f"r{row.id}-title": "Spam", f"r{row.id}-text": "Not for the digest.", f"r{row.id}-position": "5"},
    )
    assert r.status_code == 302
    post(c, f"/admin/moderation/items/{items['a']}/reject", reason=str(row.id))
    post(c, f"/admin/moderation/reasons/{row.id}/delete")
    assert session.scalar(select(RejectionReason)) is None
    assert item(session, items["a"]).decision_reason == "Not for the digest."  # the decision keeps its words
    acts = [(e.action, e.before and e.before["text"], e.after and e.after["text"]) for e in entries(session, "reason")]
    assert acts == [
        ("reason.create", None, "This looks like spam."),
        ("reason.edit", "This looks like spam.", "Not for the digest."),
        ("reason.delete", "Not for the digest.", None),
    ]
