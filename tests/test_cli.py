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


def test_items_show_and_partners_list_never_print_terminal_escapes(app, session, demo):
    """Rows stored before intake cleaned them (or written by anything else) still reach the
    terminal without escape sequences: the CLI strips them when it prints."""
    from mailer.content.models import Item

    item = session.scalars(select(Item).order_by(Item.id)).first()
    item.title = "Clinic \x1b]0;owned\x07evenings\x1b[2J"
    item.body_markdown = "First line\r\n\x1b[1;31mred\x1b[0m second\x9b2J"
    partner = item.partner
    partner.feed_url = "https://feeds.example.org/rss"
    partner.feed_error = "HTTP 503 \x1b]8;;https://evil.example/\x1b\\Service\x1b]8;;\x1b\\ Unavailable\x1b[H"
    session.commit()
    runner = app.test_cli_runner()
    shown = runner.invoke(main, ["items", "show", str(item.id)])
    listed = runner.invoke(main, ["partners", "list"])
    items = runner.invoke(main, ["items", "list"])
    for result in (shown, listed, items):
        assert result.exit_code == 0, result.output
        assert not any(ch in result.output for ch in "\x1b\x07\x9b\r"), repr(result.output)
    assert "title    Clinic evenings" in shown.output
    assert "First line\n" in shown.output and "red second" in shown.output
    assert "feed ERROR: HTTP 503 Service Unavailable" in listed.output
    assert "Clinic evenings" in items.output
