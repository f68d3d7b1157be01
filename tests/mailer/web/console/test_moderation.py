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


# --- held group posts in the same inbox -------------------------------------------------


def hold(rt, slug="bme-network", *, sender="outsider@example.com", subject="Joint event?", body="Hello all", html=""):
    """A post to ``slug`` from a non-member: the chain holds it. Returns the post id."""
    from mailer.groups import directory, posting
    from mailer.inbound.parse import parse

    with rt.db.transaction() as s:
        group = directory.find_group(s, slug) or directory.create_group(s, slug, slug.replace("-", " ").title())
        if html:
            raw = (
                f"From: Sam <{sender}>\r\nTo: {slug}@ertg.example.org\r\nSubject: {subject}\r\n"
                'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\n'
                f"--b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n--b\r\nContent-Type: text/html\r\n\r\n{html}\r\n--b--\r\n"
            ).encode()
        else:
            raw = (
                f"From: Sam <{sender}>\r\nTo: {slug}@ertg.example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
            )
        got = posting.receive(s, group, parse(raw), raw, sender, list_domain="ertg.example.org", max_recipients=50)
        assert got.action == "hold", got
        return got.post_id


def group_post(session, post_id):
    from mailer.groups.models import GroupPost

    session.expire_all()
    return session.get(GroupPost, post_id)


def test_held_group_posts_share_the_inbox_with_items_and_filter_by_kind_and_group(app, staff, clock, items, rt):  # noqa: F811
    p1 = hold(rt, subject="Joint event <b>next</b> month")
    p2 = hold(rt, "gp-practices", sender="spam@example.net", subject="Cheap pills")
    c = logged_in(app, staff["moderator"], clock)
    page = c.get("/admin/moderation").text
    assert f'href="/admin/moderation/items/{items["a"]}"' in page
    assert f'href="/admin/moderation/posts/{p1}"' in page and f'href="/admin/moderation/posts/{p2}"' in page
    assert "outsider@example.com" in page and "Bme Network" in page
    assert "Joint event &lt;b&gt;next&lt;/b&gt; month" in page  # a subject is text
    assert "non-member" in page  # why it was held
    assert f'name="post" value="{p1}"' in page
    posts_only = c.get("/admin/moderation?source=post").text
    assert f"/admin/moderation/items/{items['a']}" not in posts_only and f"/admin/moderation/posts/{p1}" in posts_only
    items_only = c.get("/admin/moderation?source=item").text
    assert f"/admin/moderation/posts/{p1}" not in items_only and f"/admin/moderation/items/{items['a']}" in items_only
    with rt.db.transaction() as s:
        from mailer.groups.directory import find_group

        gp = find_group(s, "gp-practices").id
    one_group = c.get(f"/admin/moderation?group={gp}").text
    assert f"/admin/moderation/posts/{p2}" in one_group and f"/admin/moderation/posts/{p1}" not in one_group
    assert f"/admin/moderation/items/{items['a']}" not in one_group  # items belong to no group
    # a partner filter is about items only
    naz = c.get(f"/admin/moderation?partner={items['naz']}").text
    assert f"/admin/moderation/posts/{p1}" not in naz


def test_a_held_post_is_read_as_text_never_as_its_senders_markup(app, staff, clock, rt):  # noqa: F811
    post_id = hold(rt, body="See <script>alert(1)</script> {{ 7*7 }}", html="<p onclick='x()'>Rich <img src=x></p>")
    c = logged_in(app, staff["moderator"], clock)
    page = c.get(f"/admin/moderation/posts/{post_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}" in page
    assert "<script>alert" not in page and "onclick" not in page and "<img src=x" not in page
    assert "outsider@example.com" in page and "(not a member)" in page


def test_two_moderators_never_work_the_same_post(app, staff, clock, rt, session):  # noqa: F811
    post_id = hold(rt)
    staff["moderator"].totp_secret = None
    first, second = logged_in(app, staff["editor"], clock), logged_in(app, staff["moderator"], clock)
    assert post(first, f"/admin/moderation/posts/{post_id}/claim").status_code == 302
    page = second.get(f"/admin/moderation/posts/{post_id}").text
    assert "editor, since" in page and "Approve" not in page
    r = post(second, f"/admin/moderation/posts/{post_id}/approve")
    assert r.status_code == 409 and "editor is working on post" in r.text
    r = post(second, "/admin/moderation/approve", post=post_id)
    assert "was not approved: editor is working on post" in second.get(r.headers["Location"]).text
    assert group_post(session, post_id).status == "held"
    (claimed,) = entries(session, "group_post.claim")
    assert (claimed.actor, claimed.object_type, claimed.object_id) == ("editor", "group_posts", str(post_id))
    # the claim lapses; the second moderator may then act
    clock.t += CLAIM_MINUTES * 60 + 1
    second = logged_in(app, staff["moderator"], clock)
    assert post(second, f"/admin/moderation/posts/{post_id}/approve").status_code == 302
    assert group_post(session, post_id).status == "approved"
    # a decided post cannot be decided again
    r = post(logged_in(app, staff["editor"], clock), f"/admin/moderation/posts/{post_id}/discard")
    assert r.status_code == 409 and "is not held" in r.text


def test_approve_and_trust_in_one_step_delivers_and_trusts_the_sender(app, staff, clock, rt, session, queue):  # noqa: F811
    from mailer.groups import posting
    from mailer.groups.directory import find_group
    from mailer.groups.models import GroupDelivery

    with rt.db.transaction() as s:
        from mailer.groups import service

        service.add_members(s, find_group(s, "bme-network") or _group(s), ["member@nhs.example"], basis="contract")
    post_id = hold(rt)
    c = logged_in(app, staff["editor"], clock)
    r = post(c, f"/admin/moderation/posts/{post_id}/approve", trust="1")
    assert "Its sender&#39;s later posts will not be held." in c.get(r.headers["Location"]).text
    p = group_post(session, post_id)
    assert (p.status, p.decided_by) == ("approved", "console:editor")
    assert posting.sender_rule(session, p.group, "outsider@example.com") == "trust"
    (entry,) = entries(session, "group_post.approve")
    assert entry.after == {"status": "approved", "group": "bme-network", "trusted_sender": True}
    assert "outsider" not in str(entry.after)  # the log keeps no address
    queue()
    assert session.scalar(select(GroupDelivery.status).where(GroupDelivery.post_id == post_id)) == "sent"


def _group(s):
    from mailer.groups import directory

    return directory.create_group(s, "bme-network", "Bme Network")


def test_reject_a_post_with_a_template_tells_the_sender(app, staff, clock, rt, session, transport, queue):  # noqa: F811
    post_id = hold(rt)
    with rt.db.transaction() as s:
        reason = reasons.add_reason(s, "Off topic", "This group is for BME staff networks' work.")
    c = logged_in(app, staff["editor"], clock)
    r = post(c, f"/admin/moderation/posts/{post_id}/reject", reason="other", extra="")
    assert r.status_code == 400 and "Write the reason for the sender." in r.text
    r = post(c, f"/admin/moderation/posts/{post_id}/reject", reason=str(reason.id), extra="Try the coalition group.")
    assert r.status_code == 302
    p = group_post(session, post_id)
    assert p.status == "rejected" and p.raw == b""
    assert p.decision_reason == "This group is for BME staff networks' work. Try the coalition group."
    (entry,) = entries(session, "group_post.reject")
    assert entry.after["reason"] == p.decision_reason
    queue()
    (mail,) = [m for m in transport.messages if m.recipient == "outsider@example.com"]
    assert "This group is for BME staff networks' work." in mail.data.decode()


def test_discard_and_ban_and_bulk_approve_are_audited(app, staff, clock, rt, session):  # noqa: F811
    from mailer.groups import posting

    spam, a, b = hold(rt, sender="spam@example.net"), hold(rt, subject="One"), hold(rt, subject="Two")
    c = logged_in(app, staff["admin"], clock)
    r = post(c, f"/admin/moderation/posts/{spam}/discard", ban="1")
    assert r.status_code == 302
    p = group_post(session, spam)
    assert p.status == "discarded" and posting.sender_rule(session, p.group, "spam@example.net") == "ban"
    (entry,) = entries(session, "group_post.discard")
    assert entry.after["banned_sender"] is True
    r = post(c, "/admin/moderation/approve", post=[a, b, spam], back="/admin/moderation?source=post")
    assert r.headers["Location"] == "/admin/moderation?source=post"
    page = c.get(r.headers["Location"]).text
    assert "Approved 2 group posts" in page and f"Post {spam} was not approved" in page
    assert {group_post(session, i).status for i in (a, b)} == {"approved"}
    assert len(entries(session, "group_post.approve")) == 2


def test_logged_out_and_viewers_cannot_touch_held_posts(app, client, staff, clock, rt, session):  # noqa: F811
    post_id = hold(rt)
    assert client.get(f"/admin/moderation/posts/{post_id}").headers["Location"].startswith("/admin/login")
    token = csrf_token(client.get("/admin/login").text)
    for action in ("claim", "release", "approve", "reject", "discard"):
        r = client.post(f"/admin/moderation/posts/{post_id}/{action}", data={"csrf_token": token, "reason": "x"})
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), action
    staff["viewer"].totp_secret = None
    v = logged_in(app, staff["viewer"], clock)
    assert v.get(f"/admin/moderation/posts/{post_id}").status_code == 403
    assert post(v, f"/admin/moderation/posts/{post_id}/approve").status_code == 403
    assert group_post(session, post_id).status == "held"
    assert entries(session, "group_post") == []
