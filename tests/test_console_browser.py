"""The console in a real headless Chromium: logging in with two factors, and axe-core on
every console page with zero serious or critical violations (tests/axe.py)."""

from __future__ import annotations

import pyotp
import pytest

from mailer.staff.accounts import create_user
from tests.axe import assert_accessible

PASSWORD = "correct horse battery"


@pytest.fixture
def people(session):
    """An admin with two-factor (secret on ``.secret``) and a moderator without."""
    admin = create_user(session, "amina", "admin", PASSWORD, actor="test")
    admin.totp_secret = pyotp.random_base32()
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
    if user.totp_secret:
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        if check:
            assert_accessible(page)
        page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(user.totp_secret).now())
        page.get_by_role("button", name="Log in").click()


@pytest.mark.browser
def test_console_pages_have_no_serious_accessibility_problems(live_server, browser, people):
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
