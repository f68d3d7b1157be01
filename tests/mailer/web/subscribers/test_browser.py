"""One person in a real headless Chromium: subscribe -> confirm -> change preferences ->
unsubscribe, against the app served over HTTP on loopback."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from subscribers.models import Subscriber
from tests.conftest import links_in


@pytest.mark.browser
def test_subscribe_confirm_change_preferences_unsubscribe_in_chromium(
    live_server, browser, demo, transport, queue, session
):
    from playwright.sync_api import expect

    server = live_server

    def sub():
        session.expire_all()
        return session.scalar(select(Subscriber).where(Subscriber.email == "priya@riverside.example.org"))

    page = browser.new_page()
    try:
        page.set_default_timeout(15_000)
        page.goto(f"{server}/subscribe")
        page.get_by_label("Email address").fill("priya@riverside.example.org")
        page.get_by_label("Your name").fill("Priya Patel")
        page.get_by_label("Organisation", exact=True).fill("Riverside Surgery")
        page.get_by_label("Type of organisation").select_option("gp_practice")
        page.get_by_label("Practice or organisation code (optional)").fill("A81001")
        page.get_by_label("Heart health").check()
        page.get_by_role("button", name="Subscribe").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
        assert sub().status == "pending"

        queue()
        confirm = next(u for u in links_in(transport.messages[-1].data) if "/confirm/" in u)
        page.goto(server + confirm.removeprefix("http://127.0.0.1"))
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
        assert sub().status == "confirmed"

        page.get_by_role("link", name="change your topics and partners").click()
        expect(page.locator("#address")).to_have_text("priya@riverside.example.org")
        page.get_by_label("Heart health").uncheck()
        page.get_by_label("Mental health").check()
        page.get_by_label("Diverse Minds").check()
        page.get_by_role("button", name="Save my preferences").click()
        expect(page.get_by_role("status")).to_contain_text("apply from the next digest")
        s = sub()
        assert [t.slug for t in s.topics] == ["mental-health"]
        assert [p.slug for p in s.partners] == ["diverse-minds"]

        page.get_by_role("link", name="Unsubscribe from the digest").click()
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
        expect(page.get_by_role("button", name="Subscribe me again")).to_be_visible()
        assert sub().status == "unsubscribed"
    finally:
        page.close()


@pytest.mark.browser
def test_one_preference_page_for_the_digest_and_groups_in_chromium(live_server, browser, demo, app, rt, session):
    """A group email's manage link opens the one preference page: the digest's choices and
    every group, each changeable there, accessible (axe)."""
    from playwright.sync_api import expect

    from mailer.cli import main
    from mailer.groups import directory, service
    from mailer.groups.links import GroupLinks
    from tests.axe import assert_accessible

    sub = session.scalars(select(Subscriber).where(Subscriber.status == "confirmed").order_by(Subscriber.id)).first()
    runner = app.test_cli_runner()
    assert runner.invoke(main, ["groups", "create", "coalition", "--name", "Policy coalition"]).exit_code == 0
    assert runner.invoke(main, ["groups", "add", "coalition", sub.email, "--basis", "consent"]).exit_code == 0
    with rt.db.transaction() as s:
        m = service.find_member(s, directory.get_group(s, "coalition"), sub.email)
        link = GroupLinks(rt.settings).manage(m.id, m.token_version)
        member_id = m.id

    page = browser.new_page()
    try:
        page.set_default_timeout(15_000)
        page.goto(live_server + link.removeprefix(rt.settings.base_url))
        expect(page.get_by_role("heading", name="Your preferences")).to_be_visible()
        expect(page.get_by_role("button", name="Save my preferences")).to_be_visible()
        assert_accessible(page)
        # The digest's choices change from here too (the data pages stay behind the
        # digest's own link).
        page.get_by_label("Mental health").set_checked(True)
        page.get_by_role("button", name="Save my preferences").click()
        expect(page.get_by_role("status").first).to_contain_text("apply from the next digest")
        assert page.get_by_role("link", name="Download my data").count() == 0
        page.goto(live_server + link.removeprefix(rt.settings.base_url))
        section = page.locator(f"section[aria-labelledby=group-{member_id}]")
        section.get_by_label("One email a day listing the day's messages").check()
        section.get_by_role("button", name="Save for Policy coalition").click()
        expect(page.get_by_role("status").first).to_contain_text("one email a day from Policy coalition")
        page.locator(f"section[aria-labelledby=group-{member_id}]").get_by_role(
            "button", name="Leave Policy coalition"
        ).click()
        expect(page.get_by_role("status").first).to_contain_text("You have left Policy coalition.")
        assert_accessible(page)
        with rt.db.transaction() as s:
            left = service.find_member(s, directory.get_group(s, "coalition"), sub.email)
            assert (left.status, left.delivery) == ("left", "digest")
            assert "mental-health" in [t.slug for t in s.get(Subscriber, sub.id).topics]
    finally:
        page.close()
