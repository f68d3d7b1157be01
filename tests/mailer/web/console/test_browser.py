"""The console in a real headless Chromium: logging in with two factors, and axe-core on
every console page with zero serious or critical violations (tests/axe.py)."""

from __future__ import annotations

import pyotp
import pytest

from mailer.staff.accounts import create_user
from mailer.staff.twofactor import set_secret
from tests.axe import assert_accessible

PASSWORD = "correct horse battery"


@pytest.fixture
def people(session):
    """An admin with two-factor (secret on ``.secret``) and a moderator without."""
    admin = create_user(session, "amina", "admin", PASSWORD, actor="test")
    admin.secret = pyotp.random_base32()
    set_secret(session, admin, admin.secret)
    moderator = create_user(session, "mo", "moderator", PASSWORD, actor="test")
    session.commit()
    return {"admin": admin, "moderator": moderator}


def browser_login(page, server, user, *, check=False):
    """Log ``user`` in through the pages (axe on each login step when ``check``)."""
    from playwright.sync_api import expect

    page.goto(f"{server}/admin/login")
    if check:
        assert_accessible(page)
    page.get_by_label("User name").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    if getattr(user, "secret", None):
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        if check:
            assert_accessible(page)
        page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(user.secret).now())
        page.get_by_role("button", name="Log in").click()


@pytest.mark.browser
def test_console_pages_have_no_serious_accessibility_problems(live_server, browser, people, demo):
    from playwright.sync_api import expect

    page = browser.new_page()
    try:
        page.set_default_timeout(15_000)
        # the login page with its error summary, as a person sees it after a slip
        page.goto(f"{live_server}/admin/login")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("alert")).to_contain_text("Enter your user name.")
        assert_accessible(page)

        browser_login(page, live_server, people["admin"], check=True)
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        assert_accessible(page)
        for link, heading in (("Audit log", "Audit log"), ("Staff", "Staff accounts")):
            page.get_by_role("navigation", name="Console").get_by_role("link", name=link).click()
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            assert_accessible(page)
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()

        # a role that has not set up two-factor: the dashboard's notice and the enrolment page
        browser_login(page, live_server, people["moderator"])
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("link", name="set up two-factor").click()
        expect(page.get_by_role("heading", name="Set up two-factor")).to_be_visible()
        assert_accessible(page)
        page.goto(f"{live_server}/admin/audit")  # not for a moderator: the 403 page
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        assert_accessible(page)
    finally:
        page.close()


@pytest.mark.browser
def test_moderating_in_the_browser_claim_edit_approve_reject_with_axe_on_every_page(
    live_server, browser, people, rt, session
):
    from playwright.sync_api import expect

    from mailer.content import reasons
    from mailer.content.models import Item
    from tests.factories import make_partner
    from tests.mailer.web.console.test_moderation import submit

    naz, _, _ = make_partner(rt)
    first = submit(rt, naz, "Heart screening in Lambeth")
    second = submit(rt, naz, "Clinic hours change", topics=("sexual-health",))
    reasons.seed_starters(session)
    session.commit()
    page = browser.new_page()
    try:
        page.set_default_timeout(15_000)
        browser_login(page, live_server, people["moderator"])
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Moderation").click()
        expect(page.get_by_role("heading", name="Moderation")).to_be_visible()
        assert_accessible(page)

        page.get_by_role("link", name="Heart screening in Lambeth").click()
        page.get_by_role("button", name="Claim it").click()
        expect(page.get_by_role("status")).to_contain_text("You are working on this item")
        assert_accessible(page)
        page.get_by_role("link", name="Edit the item").click()
        assert_accessible(page)
        page.get_by_label("Title").fill("Heart screening in Lambeth and Southwark")
        page.get_by_label("Why you changed it").fill("Both boroughs")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("table", name="Fields an editor changed")).to_contain_text("and Southwark")
        assert_accessible(page)  # the diff, the decision forms and the partner's history
        page.get_by_role("button", name="Reject").click()  # no reason chosen: the error summary
        expect(page.get_by_role("alert")).to_contain_text("Choose a reason.")
        assert_accessible(page)
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_contain_text("Approved")

        page.goto(f"{live_server}/admin/moderation/items/{second}")
        page.get_by_label("Reason", exact=True).select_option(label="Out of scope")
        page.get_by_role("button", name="Reject").click()
        expect(page.get_by_role("status")).to_contain_text("Rejected")

        page.goto(f"{live_server}/admin/moderation/reasons")
        assert_accessible(page)
        session.expire_all()
        assert [session.get(Item, i).status for i in (first, second)] == ["approved", "rejected"]
    finally:
        page.close()


@pytest.mark.browser
def test_partners_and_topics_pages_pass_axe(live_server, browser, people, rt):
    from playwright.sync_api import expect

    from tests.factories import make_partner

    make_partner(rt, feed_url="https://feeds.example.org/news.xml")
    page = browser.new_page()
    try:
        page.set_default_timeout(15_000)
        browser_login(page, live_server, people["moderator"])
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Partners").click()
        expect(page.get_by_role("heading", name="Partners", exact=True)).to_be_visible()
        page.get_by_role("button", name="Add the partner").click()  # empty: the error summary
        expect(page.get_by_role("alert")).to_contain_text("Give the partner a short name.")
        assert_accessible(page)
        page.get_by_role("link", name="Naz Project London").click()
        page.get_by_label("What the token is for").fill("Their CMS")
        page.get_by_role("button", name="Issue a token").click()
        expect(page.get_by_role("status")).to_contain_text("shown only this once")
        assert_accessible(page)
        page.goto(f"{live_server}/admin/topics")
        page.get_by_role("button", name="Move Heart health up").click()
        expect(page.get_by_role("heading", name="Topics")).to_be_visible()
        assert_accessible(page)
    finally:
        page.close()


@pytest.mark.browser
def test_bounces_page_and_its_lookup_pass_axe(live_server, browser, people, session):
    from playwright.sync_api import expect

    from tests.mailer.web.console.test_bounces import world

    world(session)
    page = browser.new_page()
    try:
        page.set_default_timeout(15_000)
        browser_login(page, live_server, people["admin"])
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Bounces").click()
        assert_accessible(page)
        page.get_by_label("Email address to look up").fill("a@nhs.example")
        page.get_by_role("button", name="Look it up").click()
        expect(page.get_by_role("status")).to_contain_text("a@nhs.example is suppressed")
        assert_accessible(page)
    finally:
        page.close()
