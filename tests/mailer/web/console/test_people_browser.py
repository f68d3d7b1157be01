"""The people screens in a real headless Chromium: an editor logs in with two-factor,
checks a CSV (dry run), imports it and watches it finish; then the subscriber search,
a profile and the outbox; axe on every page once tests/axe.py is there."""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select

from mailer.staff.accounts import create_user
from mailer.staff.twofactor import set_secret
from subscribers.models import ImportJob, Subscriber
from tests.factories import checked_import

PASSWORD = "correct horse battery"
CSV = (
    "email,name,organisation,topics\n"
    "browser.one@surgery.example,Browser One,Hill Surgery,heart-health\n"
    "browser.two@trust.example,Browser Two,North Trust,policy\n"
    "not an address,Bad,,policy\n"
)


@pytest.fixture
def editor_secret(session):
    user = create_user(session, "editor", "editor", PASSWORD, actor="test")
    secret = pyotp.random_base32()
    set_secret(session, user, secret)
    session.commit()
    return secret


def log_in(page, server, secret):
    page.goto(f"{server}/admin/login")
    page.get_by_label("User name").fill("editor")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Log in").click()


def accessible(page):
    """axe on the page as it is, where the helper exists (it lands with the inbox work)."""
    try:
        from tests.axe import assert_accessible
    except ImportError:
        return
    assert_accessible(page)


@pytest.mark.browser
def test_import_with_a_dry_run_then_watch_it_finish_in_chromium(
    live_server, browser, demo, editor_secret, session, transport
):
    from playwright.sync_api import expect

    server = live_server
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.set_default_timeout(20_000)
        log_in(page, server, editor_secret)
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        page.get_by_role("link", name="Subscribers", exact=True).click()
        expect(page.get_by_role("heading", name="Subscribers", exact=True)).to_be_visible()  # loaded: axe
        accessible(page)  # ran on a page still navigating once ("documentElement" of null)
        page.get_by_role("link", name="Import subscribers from a CSV file").click()
        expect(page.get_by_label("CSV file")).to_be_visible()
        accessible(page)
        page.get_by_label("CSV file").set_input_files(
            files=[{"name": "network.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
        )
        page.get_by_label("Import the valid rows even if some rows are invalid").check()
        page.get_by_role("button", name="Check the file").click()

        expect(page.get_by_role("heading", name="Dry run: nothing has been written yet")).to_be_visible()
        expect(page.locator("#count-created")).to_have_text("2")
        expect(page.locator("#count-invalid")).to_have_text("1")
        expect(page.get_by_role("cell", name="not an address")).to_be_visible()
        accessible(page)
        assert session.scalar(select(Subscriber).where(Subscriber.email == "browser.one@surgery.example")) is None

        page.get_by_role("button", name="Import: create 2 and update 0").click()
        # the progress script polls and reloads the page when the worker has finished
        expect(page.get_by_role("heading", name="Imported")).to_be_visible()
        expect(page.locator("#count-created")).to_have_text("2")
        accessible(page)
        session.expire_all()
        assert session.scalar(select(Subscriber).where(Subscriber.email == "browser.one@surgery.example"))

        page.get_by_role("link", name="Back to subscribers").click()
        page.get_by_label("Address, name or organisation contains").fill("hill surgery")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("status")).to_have_text("1 subscriber found.")
        page.get_by_role("link", name="browser.one@surgery.example").click()
        expect(page.get_by_role("heading", name="Consent ledger")).to_be_visible()
        accessible(page)
        page.get_by_role("link", name="Outbox").click()
        expect(page.get_by_role("heading", name="Outbox")).to_be_visible()
        accessible(page)
        assert not [e for e in errors if "Content Security Policy" in e], errors  # nothing blocked
    finally:
        page.close()


@pytest.mark.browser
def test_the_import_page_refreshes_itself_without_javascript(rt, live_server, browser, demo, editor_secret, session):
    from playwright.sync_api import expect

    from subscribers import import_jobs

    job = checked_import(rt, CSV, queued=True, created_by="editor")  # queued, but no worker is told: the page waits
    job = session.get(ImportJob, job.id)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.set_default_timeout(20_000)
        log_in(page, live_server, editor_secret)
        page.goto(f"{live_server}/admin/subscribers/import/{job.id}")
        expect(page.get_by_role("heading", name="Importing…")).to_be_visible()
        # the worker finishes meanwhile; the <noscript> refresh brings the outcome
        import_jobs.start(session, job)
        import_jobs.run(session, job)
        session.commit()
        expect(page.get_by_role("heading", name="Imported")).to_be_visible()
    finally:
        context.close()


@pytest.mark.browser
def test_the_admin_people_pages_and_public_pages_pass_axe(live_server, browser, demo, session, settings):
    from playwright.sync_api import expect

    from mailer.delivery.transactional import compose_transactional
    from mailer.mail.transport import FileOutbox

    admin = create_user(session, "editor", "admin", PASSWORD, actor="test")  # named editor for log_in
    secret = pyotp.random_base32()
    set_secret(session, admin, secret)
    sub = session.scalars(select(Subscriber).order_by(Subscriber.id)).first()
    env = compose_transactional("manage", settings, sub)
    FileOutbox(settings.outbox_dir).send("bounces@example.org", env.recipient, env.data)
    session.commit()
    name = next(p.name for p in settings.outbox_dir.iterdir() if p.suffix == ".eml")
    page = browser.new_page()
    try:
        page.set_default_timeout(20_000)
        log_in(page, live_server, secret)
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        # (the staff list, in the same state, is checked by tests/mailer/web/console/test_browser.py)
        for path, heading in (
            ("/admin/settings", "Settings"),
            ("/admin/account", "My account"),
            (f"/admin/outbox/{name}", "Your subscription to the campaign digest"),
            (f"/admin/subscribers/{sub.id}/erase", f"Erase {sub.email}?"),
            ("/admin/subscribers?status=confirmed", "Subscribers"),
            ("/subscribe", None),
            ("/manage", None),
        ):
            page.goto(live_server + path)
            if heading:
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            accessible(page)
        # errors tied to their fields, with a summary at the top, pass too
        page.goto(f"{live_server}/admin/account")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_role("alert")).to_contain_text("Enter your current password.")
        accessible(page)
    finally:
        page.close()
