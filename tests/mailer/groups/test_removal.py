"""Taking posts out of the archive (mailer/groups/removal.py): a moderator's removal and
erasing a person in every group."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer.groups import archive, directory, posting, removal, search, service
from mailer.groups.directory import GroupError
from mailer.groups.models import GroupAttachment, GroupConsentEvent, GroupMember, GroupPost
from subscribers.models import Subscriber
from tests.conftest import BOTH_DIALECTS

DOMAIN = "ertg.example.org"
WITH_FILE = (
    "From: Priya Shah <Priya@nhs.example>\r\nSubject: {subject}\r\nMessage-ID: <{mid}@nhs>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n'
    '--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="cv.pdf"\r\n\r\n%PDF\r\n--b--\r\n'
)


def receive(session, group, raw: bytes) -> GroupPost:
    msg = message_from_bytes(raw, policy=policy.compat32)
    got = posting.receive(session, group, msg, raw, "priya@nhs.example", list_domain=DOMAIN, max_recipients=25)
    return session.get(GroupPost, got.post_id)


@pytest.fixture
def two_groups(session):
    a = directory.create_group(session, "bme", "BME networks")
    b = directory.create_group(session, "gp", "GP practices", policy="moderated")
    for g in (a, b):
        service.add_members(session, g, ["priya@nhs.example", "sam@nhs.example"], basis="consent")
    return a, b


def test_a_moderator_removes_an_approved_post_once(session, two_groups):
    a, b = two_groups
    post = receive(session, a, WITH_FILE.format(subject="Mine", mid="m", body="my words").encode())
    with pytest.raises(GroupError, match="no post"):
        removal.remove_post(session, b, post.id, by="x")  # another group's post
    removal.remove_post(session, a, post.id, by="moderator:mod@nhs.example", reason="off topic")
    assert (post.status, post.removal, post.raw, post.body_text) == ("removed", "moderator", b"", "")
    assert session.scalars(select(GroupAttachment)).all() == []
    (shown,) = archive.thread(session, a, post.id) or [archive.view(session, post)]
    assert shown.removed == "This message was removed by a moderator." and shown.new_text == ""
    with pytest.raises(GroupError, match="removed already"):
        removal.remove_post(session, a, post.id, by="x")


@BOTH_DIALECTS  # the search index goes too, on both
def test_erasing_a_person_strips_their_posts_in_every_group_and_their_memberships(session, two_groups):
    a, b = two_groups
    mine = receive(session, a, WITH_FILE.format(subject="Joint event", mid="p1", body="Priya's plan").encode())
    held = receive(session, b, WITH_FILE.format(subject="Held one", mid="p2", body="waiting").encode())
    theirs = receive(
        session, a, b"From: Sam <sam@nhs.example>\r\nSubject: Re: Joint event\r\nIn-Reply-To: <p1@nhs>\r\n\r\nYes\r\n"
    )
    assert held.status == "held" and search.search(session, a.id, "plan")[0] == [mine.id]
    sub = Subscriber(email="priya@nhs.example", name="Priya Shah", status="active")
    session.add(sub)
    session.flush()
    assert removal.erase_person(session, sub, source="admin") == 2
    for post in (mine, held):
        assert (post.author_email, post.author_name, post.raw, post.body_text) == ("", "", b"", "")
    assert (mine.status, mine.removal, held.status) == ("removed", "erasure", "discarded")
    assert session.scalars(select(GroupAttachment)).all() == []
    assert search.search(session, a.id, "plan")[0] == []
    shown = archive.thread(session, a, mine.id)
    assert [p.removed for p in shown] == ["This message was removed at the author's request.", ""]
    assert shown[1].new_text == "Yes" and theirs.author_email == "sam@nhs.example"  # others keep theirs
    members = session.scalars(select(GroupMember).where(GroupMember.email.like("erased-%"))).all()
    assert len(members) == 2 and {m.status for m in members} == {"removed"} and {m.name for m in members} == {""}
    assert session.scalar(select(GroupMember.id).where(GroupMember.email_key == "priya@nhs.example")) is None
    assert all(
        e.ip is None for e in session.scalars(select(GroupConsentEvent)) if e.member_id in {m.id for m in members}
    )
    assert sub.status == "erased"
