"""Operator commands: clear errors that change nothing, and a command tree that matches
README's command table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


def test_the_demo_offers_one_console_admin_whose_password_works_and_never_a_second(session):
    """./scripts/dev prints a console login so a new user can look around; the account is an
    admin with a random password that logs in, and a second seed (or any existing staff
    account) makes no other way in."""
    from datetime import datetime, timezone

    from mailer.demo import demo_console_account
    from mailer.staff.login import check_password

    name, password = demo_console_account(session)
    session.flush()
    attempt = check_password(session, name, password, ip=None, when=datetime.now(timezone.utc))
    assert attempt.user is not None and attempt.user.role == "admin"
    assert check_password(session, name, "guess", ip=None, when=datetime.now(timezone.utc)).user is None
    assert demo_console_account(session) is None


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


def test_partner_commands_from_add_to_revoked_token(app, client, demo):
    """partners add/edit/list, the submission link and API tokens, then items list/edit on
    an item the new partner posted through the API."""

    def run(*args):
        result = app.test_cli_runner().invoke(main, list(args))
        return result.exit_code, result.output

    code, out = run(
        "partners",
        "add",
        "acme-trust",
        "--name",
        "Acme Trust",
        "--trusted",
        "--contact-email",
        "comms@acme.example.org",
    )
    assert code == 0 and out.startswith("Added acme-trust. Submission link (shown once): ")
    form = out.strip().split("digest.example.org", 1)[1]
    assert "Acme Trust" in client.get(form).text
    code, out = run("partners", "add", "acme-trust", "--name", "Someone else")
    assert code == 1 and "already exists" in out
    assert run("partners", "edit", "acme-trust", "--not-trusted", "--website", "https://acme.example.org") == (
        0,
        "Updated acme-trust.\n",
    )
    line = next(x for x in run("partners", "list")[1].splitlines() if x.startswith("acme-trust"))
    assert line.split()[1:] == ["-", "no", "feed"]

    code, out = run("partners", "token", "issue", "acme-trust", "--label", "newsroom")
    token_id, secret = int(out.split()[1]), out.strip().splitlines()[-1]
    assert code == 0 and secret.startswith("ertg_")
    resp = client.post(
        "/api/v1/items",
        headers={"Authorization": f"Bearer {secret}"},
        json={
            "kind": "news",
            "title": "Acme launches a helpline",
            "summary": "Open every evening.",
            "link": "https://acme.example.org/helpline",
            "topics": ["mental-health"],
        },
    )
    assert resp.status_code == 201, resp.text
    item_id = resp.json["id"]
    assert f"{item_id:5}  submitted  " in run("items", "list", "--status", "submitted")[1]
    assert "Acme launches" not in run("items", "list", "--status", "approved")[1]
    assert run("items", "edit", str(item_id), "--topic", "no-such-topic") == (1, "Error: No topic 'no-such-topic'.\n")
    assert (
        run(
            "items",
            "edit",
            str(item_id),
            "--topic",
            "heart-health",
            "--topic",
            "policy",
            "--body",
            "Line one\\nline two",
            "--note",
            "broader",
        )[0]
        == 0
    )
    code, out = run("items", "show", str(item_id))
    assert "  topics   heart-health, policy" in out and "  body     Line one\nline two" in out
    assert run("items", "show", "99999") == (1, "Error: There is no item 99999.\n")

    tokens = run("partners", "token", "list", "acme-trust")[1]
    assert f"{token_id:5}  " in tokens and " live " in tokens and "newsroom" in tokens
    assert run("partners", "token", "revoke", str(token_id)) == (0, f"Token {token_id} revoked.\n")
    assert " revoked " in run("partners", "token", "list", "acme-trust")[1]
    assert client.get(f"/api/v1/items/{item_id}", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert run("partners", "token", "revoke", "99999")[0] == 1

    assert run("partners", "revoke-link", "acme-trust")[0] == 0
    assert client.get(form).status_code == 404
    line = next(x for x in run("partners", "list")[1].splitlines() if x.startswith("acme-trust"))
    assert line.split()[1] == "no-link"
    assert run("partners", "link", "nobody") == (1, "Error: No partner with slug 'nobody'.\n")


# --- the command tree and README ---------------------------------------------------------

README = Path(__file__).resolve().parents[3] / "README.md"
FLASK_BUILTINS = {"run", "shell", "routes"}  # Flask's own commands; README only mentions them
_OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _section(help_text: str, title: str) -> list[str]:
    """The lines of one section (``Options:``, ``Commands:``) of a click help page."""
    lines, inside = [], False
    for line in help_text.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            inside = line == f"{title}:"
        elif inside:
            lines.append(line)
    return lines


def _help_tree(invoke) -> dict[tuple[str, ...], list[frozenset[str]]]:
    """Every leaf command under ``mailer`` -> its options, each as the set of its names
    (``-o, --output``; ``--wait / --no-wait``), read from ``--help`` pages only (what an
    operator sees), walking each group's ``Commands:`` list recursively."""
    tree: dict[tuple[str, ...], list[frozenset[str]]] = {}

    def walk(path: tuple[str, ...]) -> None:
        result = invoke([*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        # An entry starts two spaces in; its wrapped help text is indented further.
        names = [m.group(1) for line in _section(result.output, "Commands") if (m := re.match(r"^  (\S+)", line))]
        if names:
            for name in names:
                if not (path == () and name in FLASK_BUILTINS):
                    walk((*path, name))
            return
        options = [
            frozenset(_OPTION.findall(re.split(r"\s{2,}", line.strip())[0]))
            for line in _section(result.output, "Options")
            if line.startswith("  -")
        ]
        tree[path] = [o for o in options if o != {"--help"}]

    walk(())
    return tree


def _readme_tree(text: str) -> dict[tuple[str, ...], set[str]]:
    """Every command README's command table names -> the options its row mentions."""
    table = text.split("## The operator's `mailer` command", 1)[1].split("\n## ", 1)[0]
    tree: dict[tuple[str, ...], set[str]] = {}
    for row in table.splitlines():
        cells = re.split(r"(?<!\\)\|", row)  # a \| inside a cell is a literal bar
        if len(cells) < 3 or not cells[1].strip().startswith("`"):
            continue
        for usage in re.findall(r"`([^`]+)`", cells[1]):
            words = usage.replace("\\|", "|").split()
            assert words[0] == "mailer", f"README row names {usage!r}: write the whole command"
            # Command names come first, in lower case; an argument (SLUG, YYYY-MM, [FILE])
            # or an option ends them.
            path: tuple[str, ...] = ()
            for word in words[1:]:
                if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                path += (word,)
            assert path not in tree, f"README lists `mailer {' '.join(path)}` twice"
            tree[path] = set(_OPTION.findall(" ".join(words[1 + len(path) :])))
    return tree


def _drift(actual, documented) -> list[str]:
    """Where the commands and README's table disagree, one line per disagreement."""

    def name(path):
        return "mailer " + " ".join(path)

    problems = [f"missing from README: {name(p)}" for p in sorted(actual.keys() - documented.keys())]
    problems += [f"in README but no such command: {name(p)}" for p in sorted(documented.keys() - actual.keys())]
    for path in sorted(actual.keys() & documented.keys()):
        options, mentioned = actual[path], documented[path]
        problems += [
            f"README gives {name(path)} an option it does not have: {o}"
            for o in sorted(mentioned - set().union(*options))
        ]
        problems += [
            f"README leaves out an option of {name(path)}: {' / '.join(sorted(o))}"
            for o in options
            if not o & mentioned
        ]
    return problems


@pytest.fixture
def command_tree(app):
    runner = app.test_cli_runner()
    return _help_tree(lambda args: runner.invoke(main, args))


def test_readme_command_table_lists_every_command_and_option(command_tree):
    assert ("edition", "send") in command_tree and ("partners", "token", "issue") in command_tree
    assert len(command_tree) > 30  # the walk went down every group
    assert _drift(command_tree, _readme_tree(README.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    "before, after, problem",
    [
        ("| `mailer feeds poll [SLUG]` |", "| poll feeds |", "missing from README: mailer feeds poll"),
        (
            "`mailer partners list`",
            "`mailer partners list` / `mailer partners purge`",
            "in README but no such command: mailer partners purge",
        ),
        (
            "`mailer partners list`",
            "`mailer partners list [--colour]`",
            "README gives mailer partners list an option it does not have: --colour",
        ),
        (
            "`mailer edition send YYYY-MM [--wait] [--timeout SECONDS]`",
            "`mailer edition send YYYY-MM [--wait]`",
            "README leaves out an option of mailer edition send: --timeout",
        ),
    ],
)
def test_the_readme_check_notices_drift(command_tree, before, after, problem):
    text = README.read_text(encoding="utf-8")
    assert before in text
    assert problem in _drift(command_tree, _readme_tree(text.replace(before, after, 1)))


def test_sending_again_says_the_edition_is_already_sending_and_sends_nobody_twice(app, demo, rt, transport):
    from datetime import date

    from mailer.delivery.fanout import start_edition
    from mailer.digest.compose import load_plan
    from mailer.digest.editions import build_edition

    period = date.today().strftime("%Y-%m")
    with rt.db.transaction() as s:
        edition = build_edition(s, period)
        start_edition(s, edition, load_plan(s, edition))  # another send's fan-out, committed
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["edition", "send", period])
    assert result.exit_code == 0, result.output
    assert f"The {period} edition is already sending: only readers not yet in its ledger are added" in result.output
    sent = sorted(m.recipient for m in transport.messages)
    assert sent and len(sent) == len(set(sent))
    result = runner.invoke(main, ["edition", "send", period])
    assert result.exit_code == 0 and f"The {period} edition is already sent" in result.output
    assert sorted(m.recipient for m in transport.messages) == sent


@pytest.mark.redis
def test_worker_over_sqlite_runs_dramatiq_with_threads(tmp_path):
    """`mailer worker` becomes Dramatiq's command line in its own process: under gevent
    over PostgreSQL (see tests/mailer/metrics), with threads over SQLite, whose wait for
    its write lock gevent cannot share out among greenlets."""
    import os

    import redis

    from mailer.schema import upgrade
    from tests.conftest import REDIS_URL, TEST_ENV, need
    from tests.mailservers import Workers
    from tests.test_redis_workers import BIN

    redis_url = need(REDIS_URL, "TEST_REDIS_URL")
    redis.Redis.from_url(redis_url).flushdb()
    database = f"sqlite:///{tmp_path / 'mailer.db'}"
    upgrade(database)
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": database, "REDIS_URL": redis_url, "VAR_DIR": str(tmp_path)}
    workers = Workers(env, processes=1, command=[str(BIN / "mailer"), "worker", "--processes", "1"])
    try:
        cmdline = Path(f"/proc/{workers.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"dramatiq", b"mailer.worker"]
        assert cmdline[6:8] == [b"--threads", b"4"]  # threads, not greenlets: fewer by default
    finally:
        workers.stop()
