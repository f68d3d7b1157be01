"""A group member in a real headless Chromium: join a group, confirm, post from the web,
read the thread in the archive (axe on every archive page), against the app served over
HTTP on loopback."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.groups import directory, service
from mailer.groups.models import GroupMember, GroupPost
from tests.axe import assert_accessible
from tests.conftest import links_in


@pytest.fixture(autouse=True)
def dmarc(monkeypatch):
    from mailer.actors import groups

    monkeypatch.setattr(groups, "resolver", lambda name: [])  # no DNS from tests


@pytest.mark.browser
def test_join_confirm_post_from_the_web_and_read_the_thread_in_chromium(
    live_server, browser, transport, queue, session
):
    from playwright.sync_api import expect

    group = directory.create_group(
        session, "bme", "BME staff networks", visibility="members", description="Staff networks talk."
    )
    service.add_members(session, group, ["sam@trust.example.org"], basis="consent")
    session.commit()

    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.set_default_timeout(15_000)
        page.goto(f"{live_server}/groups")  # the directory: where a network finds the group
        assert_accessible(page)
        page.get_by_role("link", name="BME staff networks").click()
        page.get_by_label("Email address").fill("priya@riverside.example.org")
        page.get_by_label("Your name (shown with your posts)").fill("Priya Patel")
        page.get_by_label("I agree to receive").check()
        page.get_by_role("button", name="Join BME staff networks").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

        queue()
        confirm = next(u for m in transport.messages for u in links_in(m.data) if "/groups/confirm/" in u)
        page.goto(live_server + confirm.removeprefix("http://127.0.0.1"))
        page.get_by_role("button", name="Join the group").click()
        expect(page.get_by_role("heading", name="You have joined BME staff networks")).to_be_visible()

        # The members-only archive opens through the member's own link (a cookie, no password).
        page.get_by_role("link", name="Read and post in BME staff networks on the web").click()
        expect(page.get_by_role("heading", name="BME staff networks: messages")).to_be_visible()
        expect(page.get_by_text("No messages yet.")).to_be_visible()
        assert_accessible(page)

        page.get_by_role("link", name="Start a new thread").click()
        assert_accessible(page)
        page.get_by_label("Subject").fill("Joint event in March")
        page.get_by_label("Message").fill('Shall we plan it together? <script>alert("x")</script>\n\nPriya')
        page.get_by_role("button", name="Send to the group").click()
        expect(page.get_by_role("status")).to_contain_text("Your message was sent to the group.")
        expect(page.get_by_role("heading", name="Joint event in March")).to_be_visible()
        expect(page.locator(".post-body").first).to_contain_text('<script>alert("x")</script>')  # text, not markup
        assert_accessible(page)

        # The archive lists the thread; its permalink and a search find it.
        page.get_by_role("link", name="All threads").click()
        page.get_by_role("link", name="Joint event in March").click()
        page.get_by_role("link", name="Link to this message").click()
        expect(page.get_by_role("link", name="The whole thread (1 message)")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("link", name="All threads").click()
        page.get_by_label("Search this group's messages").fill("plan together")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("heading", name="1 message found")).to_be_visible()
        assert_accessible(page)
        assert dialogs == []
    finally:
        page.close()

    queue()  # delivered like an emailed post
    session.expire_all()
    post = session.scalars(select(GroupPost)).one()
    assert post.status == "approved" and post.author_email == "priya@riverside.example.org"
    assert any(m.recipient == "sam@trust.example.org" for m in transport.messages)
    member = session.scalar(select(GroupMember).where(GroupMember.email_key == "priya@riverside.example.org"))
    assert member.status == "active"
