"""A group's daily digest (mailer/groups/daily.py): the day's threads, quoted text
trimmed, and a flood of a day still one email under Gmail's clipping size."""

from __future__ import annotations

from datetime import date, timedelta
from email import message_from_bytes, policy

import pytest

from mailer.groups import daily, directory, posting, service
from mailer.groups.links import GroupLinks
from mailer.groups.models import GroupMember, GroupPost


@pytest.mark.parametrize(
    "body, own",
    [
        ("Yes.\n\nOn Mon, 30 Nov 2026 at 10:00, Priya <p@x> wrote:\n> Shall we?\n", "Yes."),
        ("Yes.\n\nOn Mon, 30 Nov 2026 at 10:00, Priya Shah <p@x>\nwrote:\n> Shall we?\n", "Yes."),
        ("Agreed.\n-----Original Message-----\nFrom: P\nSent: today\nSubject: x\n\nShall we?\n", "Agreed."),
        ("Fine.\n________________________________\nFrom: P\nSent: Monday\nTo: g\nSubject: x\n", "Fine."),
        ("> quoted first\nMy answer\n> more quote\nand more\n", "My answer\nand more"),
        (
            "From: the minutes, item 3:\nwe agreed.\n",
            "From: the minutes, item 3:\nwe agreed.",
        ),  # one header-like line is text
    ],
)
def test_trim_quoted_keeps_the_messages_own_words(body, own):
    assert daily.trim_quoted(body) == own


def test_a_flood_of_a_day_stays_one_email_under_gmails_clip(rt, app):
    from mailer.cli import main

    runner = app.test_cli_runner()
    assert runner.invoke(main, ["groups", "create", "network", "--name", "Network"]).exit_code == 0
    assert runner.invoke(main, ["groups", "add", "network", "a@nhs.example", "--basis", "consent"]).exit_code == 0
    day = date(2026, 11, 30)
    start, _ = daily.day_window(day, rt.settings.schedule_timezone)
    with rt.db.transaction() as s:
        group = directory.get_group(s, "network")
        for n in range(daily.MESSAGES_SHOWN + 20):
            raw = (f"From: a@nhs.example\r\nSubject: Topic {n}\r\nMessage-ID: <{n}@x>\r\n\r\n" + "word " * 600).encode()
            got = posting.receive(
                s,
                group,
                message_from_bytes(raw, policy=policy.compat32),
                raw,
                "a@nhs.example",
                list_domain="ertg.example.org",
                max_recipients=25,
            )
            s.get(GroupPost, got.post_id).decided_at = start + timedelta(seconds=n)
        digest = daily.open_digest(s, group.id, day)
        again = daily.open_digest(s, group.id, day)
        assert again.id == digest.id  # one row per group and day
        prepared = daily.prepare_digest(s, digest, rt.settings, GroupLinks(rt.settings))
        member = service.find_member(s, group, "a@nhs.example")
        envelope = daily.copy_for(prepared, member, GroupLinks(rt.settings))
    msg = message_from_bytes(envelope.data, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert len(html.encode()) < 102_000
    assert f"{daily.MESSAGES_SHOWN + 20} messages" in msg["Subject"]
    assert "And 20 more messages that day" in text
    # Past the text budget, threads are listed with their link only.
    assert "- Topic 99 (1): https://digest.example.org/groups/network/threads/" in text
    assert "== Topic 0 ==" in text and "== Topic 99 ==" not in text
    assert isinstance(member, GroupMember)
