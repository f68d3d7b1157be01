"""The accessibility helper (tests/axe.py) and its vendored axe-core: it must be able to
fail, say why in words, and run under the console's strict Content-Security-Policy."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.axe import AXE_DIR, AXE_FILE, assert_accessible, run_axe


def test_the_vendored_axe_is_the_recorded_version_and_licence():
    record = (AXE_DIR / "VENDORED.md").read_text()
    digest = hashlib.sha256(AXE_FILE.read_bytes()).hexdigest()
    assert f"SHA-256 `{digest}`" in record
    version = re.search(r"\| version \| ([0-9.]+) ", record).group(1)
    assert AXE_FILE.read_text()[:40].startswith(f"/*! axe v{version}")
    assert "Mozilla Public License, version 2.0" in (AXE_DIR / "LICENSE").read_text()


@pytest.mark.browser
def test_a_page_with_serious_problems_fails_with_a_readable_message(browser):
    page = browser.new_page()
    try:
        page.set_content(
            '<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
            '<img src="data:,"><form><input type="text" id="q"></form>'
            '<p class="low">faint</p></main></body></html>'
        )
        with pytest.raises(AssertionError) as failed:
            assert_accessible(page)
        message = str(failed.value)
        assert "[critical] image-alt: Images must have alternative text" in message
        assert "[critical] label:" in message and "at #q:" in message
    finally:
        page.close()


@pytest.mark.browser
def test_a_clean_page_passes_and_moderate_findings_do_not_fail(browser):
    page = browser.new_page()
    try:
        # No landmark around the text: a moderate finding ("region"), not a failure.
        page.set_content('<!doctype html><html lang="en"><head><title>t</title></head><body><p>Hello</p></body></html>')
        result = assert_accessible(page)
        assert "region" in [v["id"] for v in result.at("moderate")]
        assert run_axe(page).at("serious", "critical") == []
    finally:
        page.close()
