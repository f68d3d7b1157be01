"""The live preview in a real browser: typing updates the preview, hostile text stays text.

Headless Chromium from Debian, driven by Playwright (never `playwright install`).
"""

from __future__ import annotations

import pytest

from tests.factories import make_partner


@pytest.fixture
def live(live_server):
    return live_server


def test_typing_updates_the_preview_and_scripts_stay_inert(rt, live, browser, session):
    from tests.factories import topic_ids

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
