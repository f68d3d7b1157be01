"""The group screens under /admin/groups: who may read and who may change (per role and
logged out), the list with member and held counts, create and edit a group, members
(search, pages, add with a recorded basis, remove, role and delivery), sender rules
(trust, ban, lift), and an audit entry for every change."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.groups import directory, posting, service
from mailer.groups.models import GroupConsentEvent, GroupMember
from mailer.staff.permissions import GROUPS_MANAGE, GROUPS_VIEW, ROLE_PERMISSIONS, ROLES
from subscribers import suppression
from tests.conftest import csrf_token
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures shared with the console tests)
from tests.mailer.web.console.test_moderation import entries, hold, logged_in, post


@pytest.fixture
def bme(rt):
    with rt.db.transaction() as s:
        g = directory.create_group(s, "bme-network", "BME staff networks", description="Networks <b>talk</b>")
        service.add_members(s, g, ["owner@nhs.example"], basis="contract", role="owner")
        service.add_members(s, g, [f"m{i:02}@nhs.example" for i in range(60)], basis="legitimate-interests")
        return g.id


def member(session, email, slug="bme-network"):
    session.expire_all()
    return service.find_member(session, directory.find_group(session, slug), email)


def test_logged_out_every_group_page_goes_to_login_and_posts_change_nothing(app, client, bme, session):
    for path in ("/admin/groups", "/admin/groups/bme-network", "/admin/groups/bme-network/members",
                 "/admin/groups/bme-network/senders"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), path
    token = csrf_token(client.get("/admin/login").text)
    m = member(session, "m01@nhs.example")
    for path in ("/admin/groups", "/admin/groups/bme-network", "/admin/groups/bme-network/members",
                 f"/admin/groups/bme-network/members/{m.id}/remove", "/admin/groups/bme-network/senders"):  # fmt: skip
        r = client.post(path, data={"csrf_token": token, "slug": "x", "name": "X", "emails": "a@b.example"})
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), path
    assert member(session, "m01@nhs.example").status == "active"
    assert entries(session, "group") == []


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_and_changes_groups_exactly_as_its_permissions_say(app, staff, clock, bme, session, role):  # noqa: F811
    user = staff[role]
    if role in ("moderator", "viewer"):
        user.totp_secret = None
    c = logged_in(app, user, clock)
    reads, changes = GROUPS_VIEW in ROLE_PERMISSIONS[role], GROUPS_MANAGE in ROLE_PERMISSIONS[role]
    for path in ("/admin/groups", "/admin/groups/bme-network", "/admin/groups/bme-network/members",
                 "/admin/groups/bme-network/senders"):  # fmt: skip
        r = c.get(path)
        assert r.status_code == (200 if reads else 403), (role, path)
        if reads:
            assert (
                "Create the group" in r.text or "Add them" in r.text or "Save" in r.text or "Set the rule" in r.text
            ) == changes, (role, path)
    assert ('href="/admin/groups"' in c.get("/admin/").text) == reads
    r = post(
        c,
        "/admin/groups/bme-network/members",
        emails="new@nhs.example",
        basis="consent",
        role="member",
        delivery="every",
    )
    assert r.status_code == (302 if changes else 403)
    assert (member(session, "new@nhs.example") is not None) == changes
    r = post(
        c, "/admin/groups", slug=f"g-{role}", name="A group", visibility="public", policy="open", max_bytes="2000000"
    )
    assert r.status_code == (302 if changes else 403)
    assert (directory.find_group(session, f"g-{role}") is not None) == changes


def test_the_list_counts_members_and_held_posts_and_pages(app, staff, clock, bme, rt):  # noqa: F811
    hold(rt)
    hold(rt, subject="Another")
    with rt.db.transaction() as s:
        for i in range(30):
            directory.create_group(s, f"g{i:02}", f"Group {i:02}")
    c = logged_in(app, staff["editor"], clock)
    page = c.get("/admin/groups").text
    assert "31 groups" in page and "bme-network@" in page and "<script" not in page
    assert "61<span" in page  # active members of bme-network (owner + 60)
    assert '2<span class="visually-hidden"> held posts in BME staff networks' in page
    assert f"/admin/moderation?source=post&amp;group={bme}" in page
    assert 'rel="next"' in page and "g29" not in page
    assert "g29" in c.get("/admin/groups?page=2").text


def test_create_a_group_with_owners_and_moderators_is_audited(app, staff, clock, session):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    r = post(c, "/admin/groups", slug="postmaster", name="X", visibility="public", policy="open", max_bytes="2000000")
    assert r.status_code == 400 and "one of the service&#39;s own addresses" in r.text
    r = post(
        c,
        "/admin/groups",
        slug="gp-practices",
        name="GP practices",
        description="200 practices",
        visibility="members",
        policy="moderated",
        max_bytes="500000",
        owners="lead@nhs.example",
        moderators="mod1@nhs.example\nmod2@nhs.example",
    )
    assert r.headers["Location"] == "/admin/groups/gp-practices"
    g = directory.find_group(session, "gp-practices")
    assert (g.visibility, g.posting_policy, g.max_bytes, g.allow_attachments) == ("members", "moderated", 500000, False)
    assert [m.email for m in service.moderators(session, g)] == [
        "lead@nhs.example",
        "mod1@nhs.example",
        "mod2@nhs.example",
    ]
    assert member(session, "lead@nhs.example", "gp-practices").basis == "contract"
    (entry,) = entries(session, "group.create")
    assert (entry.actor, entry.object_type, entry.object_id) == ("editor", "groups", str(g.id))
    assert entry.after["owners"] == 1 and entry.after["moderators"] == 2 and "lead@" not in str(entry.after)
    # a bad owner address adds nothing, not even the group
    r = post(
        c,
        "/admin/groups",
        slug="other",
        name="Other",
        visibility="public",
        policy="open",
        max_bytes="2000000",
        owners="not an address",
    )
    assert r.status_code == 400 and directory.find_group(session, "other") is None


def test_edit_a_group_records_before_and_after(app, staff, clock, bme, session):  # noqa: F811
    c = logged_in(app, staff["admin"], clock)
    page = c.get("/admin/groups/bme-network").text
    assert "Networks &lt;b&gt;talk&lt;/b&gt;" in page and "owner@nhs.example (owner)" in page
    data = dict(
        name="BME networks",
        description="Networks talk",
        visibility="public",
        policy="all-moderated",
        max_bytes="2000000",
        allow_attachments="y",
    )
    r = post(c, "/admin/groups/bme-network", **data)
    assert r.status_code == 302
    g = directory.find_group(session, "bme-network")
    session.refresh(g)
    assert (g.name, g.posting_policy) == ("BME networks", "all-moderated")
    (entry,) = entries(session, "group.edit")
    assert entry.before == {
        "name": "BME staff networks",
        "description": "Networks <b>talk</b>",
        "posting_policy": "open",
    }
    assert entry.after == {"name": "BME networks", "description": "Networks talk", "posting_policy": "all-moderated"}
    r = post(c, "/admin/groups/bme-network", **{**data, "max_bytes": "10"})
    assert r.status_code == 400 and "At least 1000 bytes." in r.text


def test_members_search_pages_add_with_basis_remove_and_change(app, staff, clock, bme, session, rt):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    page = c.get("/admin/groups/bme-network/members").text
    assert "61 found" in page and "m00@nhs.example" in page and "m55@nhs.example" not in page
    assert "m55@nhs.example" in c.get("/admin/groups/bme-network/members?page=2").text
    found = c.get("/admin/groups/bme-network/members?q=M1").text
    assert "10 found" in found and "m10@nhs.example" in found and "m20@" not in found
    assert "0 found" in c.get("/admin/groups/bme-network/members?q=%25").text  # a wildcard is a character
    # add: one bad address adds nobody; a suppressed one is left out; the basis is recorded
    r = post(
        c,
        "/admin/groups/bme-network/members",
        emails="a@nhs.example\nnope",
        basis="consent",
        role="member",
        delivery="every",
    )
    assert r.status_code == 400 and "Nobody was added" in r.text and member(session, "a@nhs.example") is None
    with rt.db.transaction() as s:
        suppression.suppress(s, "gone@nhs.example", "complaint", "test")
    r = post(
        c,
        "/admin/groups/bme-network/members",
        emails="a@nhs.example, gone@nhs.example",
        basis="existing-member",
        role="moderator",
        delivery="web",
    )
    assert "gone@nhs.example is on the suppression list" in c.get(r.headers["Location"]).text
    a = member(session, "a@nhs.example")
    assert (a.status, a.basis, a.role, a.delivery) == ("active", "existing-member", "moderator", "web")
    assert member(session, "gone@nhs.example") is None
    assert "basis=existing-member" in session.scalar(
        select(GroupConsentEvent.detail).where(GroupConsentEvent.member_id == a.id)
    )
    (added,) = entries(session, "group.members.add")
    assert added.after == {
        "basis": "existing-member",
        "role": "moderator",
        "delivery": "web",
        "added": 1,
        "suppressed": 1,
    }
    # change role and delivery
    r = post(c, f"/admin/groups/bme-network/members/{a.id}", **{f"m{a.id}-role": "owner", f"m{a.id}-delivery": "every"})
    assert r.status_code == 302
    a = member(session, "a@nhs.example")
    assert (a.role, a.delivery) == ("owner", "every")
    (edit,) = entries(session, "group.member.edit")
    assert (edit.before, edit.after) == (
        {"role": "moderator", "delivery": "web"},
        {"role": "owner", "delivery": "every"},
    )
    # remove
    r = post(c, f"/admin/groups/bme-network/members/{a.id}/remove", back="/admin/groups/bme-network/members?page=2")
    assert r.headers["Location"] == "/admin/groups/bme-network/members?page=2"
    assert member(session, "a@nhs.example").status == "removed"
    (removed,) = entries(session, "group.member.remove")
    assert (removed.object_type, removed.object_id) == ("group_members", str(a.id))
    assert "removed" in c.get("/admin/groups/bme-network/members?status=removed").text
    # another group's member is not this group's to change
    with rt.db.transaction() as s:
        other = directory.create_group(s, "other", "Other")
        (o,) = service.add_members(s, other, ["x@nhs.example"], basis="consent")
        oid = service.find_member(s, other, "x@nhs.example").id
    assert post(c, f"/admin/groups/bme-network/members/{oid}/remove").status_code == 404


def test_sender_rules_trust_ban_and_lift_are_audited(app, staff, clock, bme, session):  # noqa: F811
    c = logged_in(app, staff["editor"], clock)
    r = post(c, "/admin/groups/bme-network/senders", email="friend@charity.example", action="trust")
    assert r.headers["Location"] == "/admin/groups/bme-network/senders"
    m = member(session, "m01@nhs.example")
    r = post(
        c,
        "/admin/groups/bme-network/senders",
        email="m01@nhs.example",
        action="ban",
        back="/admin/groups/bme-network/members",
    )
    assert r.headers["Location"] == "/admin/groups/bme-network/members"
    g = directory.find_group(session, "bme-network")
    assert posting.sender_rule(session, g, "friend@charity.example") == "trust"
    assert posting.sender_rule(session, g, "M01@nhs.example") == "ban"
    assert "banned" in c.get("/admin/groups/bme-network/members?q=m01").text
    page = c.get("/admin/groups/bme-network/senders").text
    assert "friend@charity.example" in page and "console:editor" in page
    assert post(c, "/admin/groups/bme-network/senders", email="bad", action="ban").status_code == 400
    rule_id = session.scalar(select(GroupMember.id).where(GroupMember.id == m.id))  # noqa: F841
    from mailer.groups.models import GroupSender

    ban = session.scalar(select(GroupSender).where(GroupSender.email_key == "m01@nhs.example"))
    assert post(c, f"/admin/groups/bme-network/senders/{ban.id}/lift").status_code == 302
    session.expire_all()
    assert posting.sender_rule(session, g, "m01@nhs.example") is None
    assert [e.action for e in entries(session, "group.sender")] == [
        "group.sender.trust",
        "group.sender.ban",
        "group.sender.lift",
    ]
    assert all("@" not in str(e.before) + str(e.after) for e in entries(session, "group.sender"))


# --- in a real browser ---------------------------------------------------------------------


@pytest.mark.browser
def test_an_editor_creates_a_group_adds_members_and_approves_a_held_post_in_chromium(live_server, browser, session, rt):
    """Every step is a plain form (the pages load no script); axe on every new page (axe
    itself needs JavaScript in the page, so this context keeps it on)."""
    import pyotp
    from playwright.sync_api import expect

    from mailer.staff.accounts import create_user
    from mailer.staff.twofactor import set_secret
    from tests.axe import assert_accessible
    from tests.mailer.web.console.test_people_browser import PASSWORD
    from tests.mailer.web.console.test_people_browser import log_in as browser_log_in

    user = create_user(session, "editor", "editor", PASSWORD, actor="test")
    secret = pyotp.random_base32()
    set_secret(session, user, secret)
    session.commit()
    context = browser.new_context()
    page = context.new_page()
    try:
        page.set_default_timeout(20_000)
        browser_log_in(page, live_server, secret)
        page.get_by_role("link", name="Groups", exact=True).click()
        expect(page.get_by_role("heading", name="Groups")).to_be_visible()
        assert_accessible(page)
        page.get_by_label("Address: the part before the @").fill("bme-network")
        page.get_by_label("Name", exact=True).fill("BME staff networks")
        page.get_by_label("Posting policy").select_option("moderated")
        page.get_by_label("Owners' addresses").fill("lead@nhs.example")
        page.get_by_role("button", name="Create the group").click()
        expect(page.get_by_role("heading", name="BME staff networks")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("link", name="Members", exact=True).click()
        page.get_by_label("Addresses to add").fill("one@nhs.example\ntwo@nhs.example")
        page.get_by_label("Why you may add them").select_option("legitimate-interests")
        page.get_by_role("button", name="Add them").click()
        expect(page.get_by_text("Done: 2 added.")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("link", name="Sender rules").click()
        page.get_by_label("Address").fill("friend@charity.example")
        page.get_by_role("button", name="Set the rule").click()
        expect(page.get_by_role("cell", name="console:editor")).to_be_visible()
        assert_accessible(page)

        post_id = hold(rt, subject="Joint <event> in May")
        page.goto(f"{live_server}/admin/moderation?source=post")
        assert_accessible(page)
        page.get_by_role("link", name="Joint <event> in May").click()
        expect(page.get_by_text("Shown as plain text")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("button", name="Claim it").click()
        page.get_by_role("button", name="Approve and trust the sender").click()
        expect(page.get_by_text("Approved: it goes to the members.")).to_be_visible()
        session.expire_all()
        from mailer.groups.models import GroupPost

        assert session.get(GroupPost, post_id).status == "approved"
    finally:
        context.close()
