"""Threads of group posts (mailer/groups/threads.py), through the one receive path."""

from __future__ import annotations

import base64
from datetime import timedelta
from email import message_from_bytes, policy

from mailer.db import utcnow
from mailer.groups import directory, posting, service, threads
from mailer.groups.models import GroupPost
from tests.conftest import BOTH_DIALECTS

DOMAIN = "ertg.example.org"


def mail(subject: str, message_id: str, extra: str = "", author: str = "Priya Shah <priya@nhs.example>") -> bytes:
    return (
        f"From: {author}\r\nTo: bme-network@{DOMAIN}\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n{extra}\r\nHello\r\n"
    ).encode()


def receive(session, group, raw: bytes) -> GroupPost:
    msg = message_from_bytes(raw, policy=policy.compat32)
    got = posting.receive(session, group, msg, raw, "priya@nhs.example", list_domain=DOMAIN, max_recipients=25)
    return session.get(GroupPost, got.post_id)


def world(session):
    group = directory.create_group(session, "bme-network", "BME staff networks")
    other = directory.create_group(session, "gp-practices", "GP practices")
    for g in (group, other):
        service.add_members(session, g, ["priya@nhs.example", "sam@nhs.example"], basis="consent")
    return group, other


def test_subject_keys_fold_reply_prefixes_tags_case_and_spacing():
    same = [
        "Joint event in March",
        "RE: Joint event in March",
        "AW: [bme-network] Re:  joint EVENT in march",
        "[EXTERNAL] RE[2]: Sv: Antw: Joint event in March",
        "Re(3): Joint event in March",
    ]
    assert {threads.subject_key(s) for s in same} == {"joint event in march"}
    assert threads.subject_key("Fwd: Joint event in March") != "joint event in march"  # a forward is new
    assert threads.subject_key("Re: " * 5000 + "x")  # a prefix bomb ends


@BOTH_DIALECTS  # IN lists and ordering of the reference lookup
def test_replies_join_their_root_by_in_reply_to_or_references(session):
    group, other = world(session)
    root = receive(session, group, mail("Joint event", "<a@nhs.example>"))
    assert root.thread_id == root.id and root.subject_key == "joint event"
    reply = receive(session, group, mail("Re: Joint event", "<b@x.example>", "In-Reply-To: <a@nhs.example>\r\n"))
    # A reply naming only a later message, through References (and an unknown id first).
    deep = receive(
        session,
        group,
        mail("Changed subject", "<c@y.example>", "References: <a@nhs.example> <b@x.example> <zz@unknown>\r\n"),
    )
    assert reply.thread_id == deep.thread_id == root.id
    # The same ids in another group are another group's business.
    elsewhere = receive(session, other, mail("Re: Joint event", "<d@x.example>", "In-Reply-To: <a@nhs.example>\r\n"))
    assert elsewhere.thread_id == elsewhere.id
    # A new subject without references starts a new thread.
    fresh = receive(session, group, mail("Minutes of the last meeting", "<e@nhs.example>"))
    assert fresh.thread_id == fresh.id


def test_outlook_replies_without_references_join_by_subject_within_a_window(session):
    group, _ = world(session)
    root = receive(session, group, mail("[bme-network] Joint event in March", "<a@nhs.example>"))
    # NHSmail / Outlook: "RE:" and no In-Reply-To or References at all.
    outlook = receive(session, group, mail("RE: [bme-network] Joint event in March", "<o1@nhs.net>"))
    german = receive(session, group, mail("AW: Joint Event in March", "<o2@example.de>"))
    assert outlook.thread_id == german.thread_id == root.thread_id
    # Outlook's Thread-Index of a later message marks a reply even with the prefix removed.
    index = base64.b64encode(bytes(27)).decode()
    indexed = receive(session, group, mail("Joint event in March", "<o3@nhs.net>", f"Thread-Index: {index}\r\n"))
    assert indexed.thread_id == root.id
    # The same subject with no sign of a reply is a new thread; so is a first Thread-Index.
    first = base64.b64encode(bytes(22)).decode()
    again = receive(session, group, mail("Joint event in March", "<n1@nhs.net>", f"Thread-Index: {first}\r\n"))
    assert again.thread_id == again.id
    # Old threads are not revived by subject: a "RE:" long after starts afresh.
    session.query(GroupPost).update({GroupPost.received_at: utcnow() - threads.SUBJECT_WINDOW - timedelta(days=1)})
    late = receive(session, group, mail("RE: Joint event in March", "<late@nhs.net>"))
    assert late.thread_id == late.id


def test_held_posts_are_threaded_too_and_their_replies_follow_them(session):
    group, _ = world(session)
    stranger = receive(session, group, mail("Question", "<q@else.example>", author="Someone <who@else.example>"))
    assert stranger.status == "held" and stranger.thread_id == stranger.id
    answer = receive(session, group, mail("Re: Question", "<r@nhs.example>", "In-Reply-To: <q@else.example>\r\n"))
    assert answer.status == "approved" and answer.thread_id == stranger.id
