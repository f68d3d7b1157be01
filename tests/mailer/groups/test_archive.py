"""A group's archive (mailer/groups/archive.py, search.py): filing approved posts, who
may read, threads, and full-text search on both databases."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from mailer.groups import archive, directory, posting, search, service
from mailer.groups.archive import ANYONE, Reader
from mailer.groups.models import GroupPost
from tests.conftest import BOTH_DIALECTS

DOMAIN = "ertg.example.org"


def receive(session, group, subject, body, message_id, author="Priya Shah <priya@nhs.example>", extra=""):
    raw = (
        f"From: {author}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()
    msg = message_from_bytes(raw, policy=policy.compat32)
    got = posting.receive(session, group, msg, raw, "priya@nhs.example", list_domain=DOMAIN, max_recipients=25)
    return session.get(GroupPost, got.post_id)


@pytest.fixture
def groups(session):
    public = directory.create_group(session, "open-group", "Open group")
    private = directory.create_group(session, "bme", "BME networks", visibility="members")
    for g in (public, private):
        service.add_members(session, g, ["priya@nhs.example"], basis="consent")
    service.add_members(session, private, ["mod@nhs.example"], basis="consent", role="moderator")
    return public, private


def test_who_reads_and_who_moderates(session, groups):
    public, private = groups
    priya = service.find_member(session, private, "priya@nhs.example")
    mod = service.find_member(session, private, "mod@nhs.example")
    outsider = service.find_member(session, public, "priya@nhs.example")  # another group's membership
    announce = directory.create_group(session, "news", "News", visibility="announce")
    assert archive.can_read(public, ANYONE) and archive.can_read(announce, ANYONE)
    assert not archive.can_read(private, ANYONE) and not archive.can_read(private, Reader(member=outsider))
    assert archive.can_read(private, Reader(member=priya)) and archive.can_read(private, Reader(staff=True))
    assert not archive.can_moderate(private, Reader(member=priya))
    assert archive.can_moderate(private, Reader(member=mod)) and archive.can_moderate(private, Reader(staff=True))
    priya.status = "left"
    assert not archive.can_read(private, Reader(member=priya))


def test_filing_keeps_text_with_addresses_masked_and_threads_list_latest_first(session, groups):
    public, _ = groups
    a = receive(session, public, "Minutes", "Notes from sam@nhs.example attached.\r\n", "<a@x>")
    b = receive(session, public, "Event", "Shall we?\r\n", "<b@x>")
    receive(session, public, "Re: Minutes", "Thanks\r\n", "<c@x>", extra="In-Reply-To: <a@x>\r\n")
    held = receive(session, public, "Spam", "buy\r\n", "<d@x>", author="x@spam.example")
    assert a.body_text == "Notes from [address hidden] attached." and held.body_text == ""
    listed, total = archive.threads(session, public)
    assert total == 2 and [t.thread_id for t in listed] == [a.id, b.id]
    assert (listed[0].posts, listed[0].subject, listed[0].started_by) == (2, "Minutes", "Priya Shah")
    assert [p.new_text for p in archive.thread(session, public, a.id)] == [
        "Notes from [address hidden] attached.",
        "Thanks",
    ]
    assert archive.thread(session, public, held.id) == [] and archive.archived_post(session, public, held.id) is None


HOSTILE_QUERIES = ['"', "NEAR(", "a* OR", "title:x", "-", "'; DROP TABLE group_posts; --", "AND", "(((", "^x", "\\"]


@BOTH_DIALECTS  # PostgreSQL full-text search and SQLite FTS5 behind one function
def test_search_finds_words_and_stems_respects_visibility_and_takes_any_text(session, groups):
    public, private = groups
    hit = receive(session, public, "Meeting in March", "We are meeting the Naz Project.\r\n", "<m@x>")
    receive(session, public, "Other", "Nothing relevant here.\r\n", "<o@x>")
    secret = receive(session, private, "Meeting notes", "Private meeting\r\n", "<p@x>")
    held = receive(session, public, "Meeting", "meeting meeting\r\n", "<h@x>", author="who@else.example")
    assert held.status == "held"
    assert search.search(session, public.id, "meetings naz")[0] == [hit.id]  # stemmed; every word required
    assert search.search(session, public.id, "march")[1] == 1  # the subject counts
    found, total = archive.search_posts(session, public, ANYONE, "meeting")
    assert [p.id for p in found] == [hit.id] and total == 1  # not the held post, not the other group's
    assert archive.search_posts(session, private, ANYONE, "meeting") == ([], 0)  # members only
    assert [p.id for p in archive.search_posts(session, private, Reader(staff=True), "meeting")[0]] == [secret.id]
    for query in HOSTILE_QUERIES:
        assert search.search(session, public.id, query)[0] == []  # no syntax error, nothing found
    assert search.search(session, public.id, '"naz project"')[0] == [hit.id]
    # A removed post leaves the index.
    from mailer.groups import removal

    removal.remove_post(session, public, hit.id, by="test")
    assert search.search(session, public.id, "naz")[0] == []


def test_pagination_of_threads(session, groups):
    public, _ = groups
    ids = [receive(session, public, f"Topic {n}", "x\r\n", f"<t{n}@x>").id for n in range(5)]
    page1, total = archive.threads(session, public, page=1, per_page=2)
    page3, _ = archive.threads(session, public, page=3, per_page=2)
    assert total == 5 and [t.thread_id for t in page1] == ids[:2:-1][:2] and [t.thread_id for t in page3] == [ids[0]]
