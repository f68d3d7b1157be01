"""The live preview in a real browser: typing updates the preview, hostile text stays text.

Headless Chromium from Debian, driven by Playwright (never `playwright install`).
"""
from __future__ import annotations

import os
import threading
from dataclasses import replace

import pytest

from tests.conftest import IN_CI
from tests.content.helpers import make_partner

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed, and CI must run browser tests")
        pytest.skip("playwright not installed")
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail("chromium is not installed, and CI must run browser tests")
        pytest.skip("chromium not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def live(rt, settings, transport):
    """The app served over HTTP on loopback (plain http, so the session cookie is not Secure)."""
    from werkzeug.serving import make_server

    from mailer.app import create_app

    app = create_app(replace(settings, base_url="http://127.0.0.1"), transport)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_typing_updates_the_preview_and_scripts_stay_inert(rt, live, browser, session):
    from tests.content.helpers import topic_ids

    _, secret, _ = make_partner(rt)
    topic_ids(session)
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live}/submit/{secret}")
    assert page.locator("#event-fields").is_hidden()  # only events ask for a date and place
    page.fill("#title", 'Clinic evenings <img src=x onerror="alert(1)">')
    page.fill("#summary", "Evening sessions with advocates.")
    page.fill("#link", "https://www.naz.org.uk/prep")
    page.check("text=Sexual health")
    page.fill("#body", "**Bold** <script>alert(2)</script>")
    preview = page.locator("#preview article")
    preview.wait_for(timeout=5000)
    assert 'Clinic evenings <img src=x onerror="alert(1)">' in preview.locator("h3").inner_text()
    assert page.locator("#summary-count").inner_text() == "32"
    page.select_option("#kind", "event")
    page.locator("#preview-error").wait_for(timeout=5000)
    assert "Event date" in page.locator("#preview-error").inner_text()
    assert page.locator("#event-fields").is_visible()
    page.fill("#link", "javascript:alert(3)")
    page.select_option("#kind", "news")
    page.locator("#preview-error", has_text="web address").wait_for(timeout=5000)
    assert dialogs == []  # neither the title, the body nor the link ran anything
