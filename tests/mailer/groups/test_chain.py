"""The moderation chain (mailer/groups/chain.py), rule by rule, in its fixed order.
Through real LMTP sessions: test_groups_posting.py."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from mailer.groups import chain
from mailer.groups.models import Group, GroupMember

DOMAIN = "ertg.example.org"


def submission(raw: bytes = b"", *, policy_="open", role=None, rule=None, mail_from="a@nhs.example", **group_kw):
    raw = raw or b"From: A <a@nhs.example>\r\nTo: g@ertg.example.org\r\nSubject: Hi\r\n\r\nHello\r\n"
    group = Group(
        slug="g",
        name="G",
        posting_policy=policy_,
        max_bytes=group_kw.get("max_bytes", 2_000_000),
        allow_attachments=group_kw.get("allow_attachments", True),
    )
    member = GroupMember(email="a@nhs.example", role=role, status="active") if role else None
    return chain.Submission(
        group=group,
        message=message_from_bytes(raw, policy=policy.compat32),
        raw=raw,
        mail_from=mail_from,
        author="a@nhs.example",
        member=member,
        sender_rule=rule,
        loop_markers=chain.LoopMarkers(DOMAIN),
        max_recipients=25,
    )


@pytest.mark.parametrize(
    "policy_, role, rule, expected",
    [
        ("open", "member", None, ("accept", "member")),
        ("open", None, None, ("hold", "non-member")),
        ("open", None, "trust", ("accept", "non-member")),
        ("moderated", "member", None, ("hold", "member")),
        ("moderated", "moderator", None, ("accept", "member")),
        ("moderated", "member", "trust", ("accept", "member")),
        ("all-moderated", "owner", None, ("hold", "member")),
        ("all-moderated", None, "trust", ("hold", "non-member")),
        ("announce-only", "member", None, ("hold", "member")),
        ("announce-only", "owner", None, ("accept", "member")),
        ("open", "member", "ban", ("drop", "banned")),
    ],
)
def test_posting_policies(policy_, role, rule, expected):
    verdict = chain.run(submission(policy_=policy_, role=role, rule=rule))
    assert (verdict.action, verdict.rule) == expected


def test_the_order_loop_before_automatic_before_ban_before_content():
    looped = b"From: a@nhs.example\r\nX-Loop: g@ertg.example.org\r\nAuto-Submitted: auto-replied\r\n\r\nx\r\n"
    assert chain.run(submission(looped, role="member", rule="ban")).rule == "loop"
    auto = b"From: a@nhs.example\r\nAuto-Submitted: auto-replied\r\n\r\nx\r\n"
    assert chain.run(submission(auto, role="member", rule="ban")).rule == "automatic"
    assert chain.run(submission(role="member", rule="ban", max_bytes=10)).rule == "banned"
    assert chain.run(submission(role="owner", max_bytes=10)).rule == "size"
    assert [r.__name__ for r in chain.RULES] == [
        "loop",
        "automatic_mail",
        "banned",
        "size_and_content",
        "member_moderation",
        "non_member",
    ]


def test_loop_markers_are_only_ours():
    other = b"From: a@nhs.example\r\nList-Id: <x.lists.example.org>\r\nX-Loop: x@lists.example.org\r\n\r\nx\r\n"
    assert chain.run(submission(other, role="member")).action == "accept"
    ours = b"From: a@nhs.example\r\nList-Id: Other <other.ertg.example.org>\r\n\r\nx\r\n"
    assert chain.run(submission(ours, role="member")).rule == "loop"


def test_attachments_are_held_only_where_the_group_takes_none():
    raw = (
        b"From: a@nhs.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\nJVBE\r\n--b--\r\n"
    )
    assert chain.run(submission(raw, role="member")).action == "accept"
    held = chain.run(submission(raw, role="member", allow_attachments=False))
    assert (held.action, held.rule) == ("hold", "attachments")


@pytest.mark.parametrize(
    "body",
    [b"<a href='javascript:alert(1)'>x</a>", b"<img src=x onerror=alert(1)>", b"<iframe src=//evil>", b"<SCRIPT>x"],
)
def test_html_with_active_content_is_held(body):
    raw = b"From: a@nhs.example\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n" + body + b"\r\n"
    verdict = chain.run(submission(raw, role="owner"))
    assert (verdict.action, verdict.rule) == ("hold", "content")


def test_too_many_mime_parts_are_held_unopened():
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(150))
    raw = b"From: a@nhs.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    assert chain.run(submission(raw, role="owner")).reason == "more than 100 MIME parts"
