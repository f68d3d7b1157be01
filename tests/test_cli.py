"""Operator commands: clear errors that change nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from mailer.cli import main
from mailer.digest.models import Edition


def test_send_without_an_edition_says_how_to_build_one(app, demo):
    result = app.test_cli_runner().invoke(main, ["edition", "send", "2031-01"])
    assert result.exit_code == 1
    assert "mailer edition build --period 2031-01" in result.output


def test_bad_period_and_unknown_item_are_refused(app, session, demo):
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["edition", "build", "--period", "November"])
    assert result.exit_code == 1 and "Period must look like 2026-11" in result.output
    assert session.scalar(select(func.count()).select_from(Edition)) == 0
    result = runner.invoke(main, ["items", "approve", "9999"])
    assert result.exit_code == 1 and "There is no item 9999" in result.output


def test_seed_demo_twice_is_harmless(app, demo):
    result = app.test_cli_runner().invoke(main, ["seed-demo"])
    assert result.exit_code == 0 and "already loaded" in result.output


def test_partner_link_rotation_prints_a_working_link(app, client, demo):
    result = app.test_cli_runner().invoke(main, ["partners", "link", "naz-project-london"])
    assert result.exit_code == 0
    path = result.output.strip().split("digest.example.org", 1)[1]
    assert "Naz Project London" in client.get(path).text
