"""A member's web form as an RFC 5322 message (mailer/groups/webposts.py)."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from mailer.groups import webposts
from mailer.groups.models import Group, GroupMember, GroupPost
from mailer.validation import InvalidInput

GROUP = Group(slug="bme", name="BME networks")
MEMBER = GroupMember(email="priya@nhs.example", name='Priya "P" Shah, <admin@evil.example>')


def test_a_new_thread_is_a_well_formed_message_from_the_member():
    raw = webposts.compose(
        GROUP, MEMBER, subject="Plans\r\nBcc: x@evil.example", body="Hi\r\nall", list_domain="l.example"
    )
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["From"].addresses[0].addr_spec == "priya@nhs.example"  # the odd name stays a name
    assert msg["To"] == "bme@l.example" and msg["Bcc"] is None
    assert msg["Subject"] == "Plans Bcc: x@evil.example"  # one line: no header injection
    assert msg["Message-ID"].endswith("@l.example>") and msg["In-Reply-To"] is None
    assert msg.get_content().replace("\r\n", "\n") == "Hi\nall\n"


def test_a_reply_names_its_parent_and_root_and_says_re():
    root = GroupPost(subject="[bme] Plans", message_id="<root@x>")
    parent = GroupPost(subject="RE: Plans", message_id="<parent@x>")
    raw = webposts.compose(
        GROUP, MEMBER, subject="ignored", body="Yes", list_domain="l.example", parent=parent, root=root
    )
    msg = message_from_bytes(raw, policy=policy.default)
    assert (msg["Subject"], msg["In-Reply-To"], msg["References"]) == ("Re: Plans", "<parent@x>", "<root@x> <parent@x>")


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [("", "x", "subject"), ("s", " \n ", "body"), ("s" * 201, "x", "subject"), ("s", "x" * 20_001, "body")],
)
def test_bad_forms_are_refused_naming_the_field(subject, body, field):
    with pytest.raises(InvalidInput) as err:
        webposts.compose(GROUP, MEMBER, subject=subject, body=body, list_domain="l.example")
    assert err.value.field == field
