"""A moderator's page of held posts (mailer/web/groups/moderation.py), reached from the
"waiting for a moderator" email: decisions, the sender told, text never markup, and the
link's limits (expiry, a moderator no longer, two moderators at once)."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer.cli import main
from mailer.groups.models import GroupPost
from tests.conftest import csrf_token, links_in
from tests.factories import received_post

BASE = "https://digest.example.org"


@pytest.fixture(autouse=True)
def dmarc(monkeypatch):
    from mailer.actors import groups

    monkeypatch.setattr(groups, "resolver", lambda name: [])  # no DNS from tests


@pytest.fixture
def coalition(app, rt):
    runner = app.test_cli_runner()
    for args in (
        ["groups", "create", "coalition", "--name", "Policy coalition", "--policy", "moderated"],
        ["groups", "add", "coalition", "owner@trust.example.org", "--basis", "contract", "--role", "owner"],
        ["groups", "add", "coalition", "mod@charity.example.org", "--basis", "contract", "--role", "moderator"],
        ["groups", "add", "coalition", "priya@nhs.example", "--basis", "consent"],
    ):
        assert runner.invoke(main, args).exit_code == 0
    return "coalition"


def hold(rt, queue, author, body="Proposal for the joint letter.", subject="Joint letter"):
    """A message to the group, held by the chain, its moderators told (as after LMTP)."""
    from mailer.actors.groups import notify_moderators

    raw = f"From: {author}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()
    with rt.db.transaction() as s:
        received = received_post(s, "coalition", raw, author)
    assert received.action == "hold"
    rt.queue.send(notify_moderators, received.post_id)
    queue()
    return received.post_id


def moderate_link(transport, address) -> str:
    for m in reversed(transport.messages):
        if m.recipient == address:
            (link,) = [u for u in links_in(m.data) if "/groups/moderate/" in u]
            return link[len(BASE) :]
    raise AssertionError(f"no moderation email to {address}")


def test_moderators_are_told_and_decide_from_their_page(app, rt, coalition, transport, queue, session):
    first = hold(rt, queue, "priya@nhs.example")
    second = hold(rt, queue, "stranger@example.org", body="<script>alert('x')</script> Buy now", subject="Offer")
    told = sorted({m.recipient for m in transport.messages})
    # The moderators, and the member whose post waits (never the stranger).
    assert told == ["mod@charity.example.org", "owner@trust.example.org", "priya@nhs.example"]
    waiting = [m for m in transport.messages if m.recipient == "priya@nhs.example"]
    assert (
        len(waiting) == 1
        and "members' posts are moderated"
        in message_from_bytes(waiting[0].data, policy=policy.default).get_body(("plain",)).get_content()
    )
    note = message_from_bytes(transport.messages[0].data, policy=policy.default)
    assert note["Subject"] == "A message to Policy coalition is waiting for a moderator"
    assert "members' posts are moderated" in note.get_body(("plain",)).get_content()

    page_path = moderate_link(transport, "mod@charity.example.org")
    client = app.test_client()
    page = client.get(page_path)
    assert page.status_code == 200
    assert "Joint letter" in page.text and "Proposal for the joint letter." in page.text
    assert "<script>" not in page.text and "&lt;script&gt;alert" in page.text  # text, never markup

    transport.messages.clear()
    token = csrf_token(page.text)
    done = client.post(f"{page_path}/{first}", data={"csrf_token": token, "action": "trust"})
    assert done.status_code == 200 and f"Approved post {first}" in done.text
    refused = client.post(f"{page_path}/{second}", data={"csrf_token": token, "action": "reject", "reason": ""})
    assert refused.status_code == 409 and "Say why the post is rejected" in refused.text
    done = client.post(
        f"{page_path}/{second}", data={"csrf_token": token, "action": "reject", "reason": "Off topic for this group."}
    )
    assert done.status_code == 200 and "Nothing is waiting." in done.text
    queue()
    got = sorted(m.recipient for m in transport.messages)
    assert got == ["mod@charity.example.org", "owner@trust.example.org", "priya@nhs.example", "stranger@example.org"]
    rejection = [m for m in transport.messages if m.recipient == "stranger@example.org"][0]
    assert (
        "Off topic for this group."
        in message_from_bytes(rejection.data, policy=policy.default).get_body(("plain",)).get_content()
    )
    session.expire_all()
    decided = {p.id: (p.status, p.decided_by) for p in session.scalars(select(GroupPost))}
    assert decided == {
        first: ("approved", "moderator:mod@charity.example.org"),
        second: ("rejected", "moderator:mod@charity.example.org"),
    }


def test_the_second_moderator_is_told_it_was_decided(app, rt, coalition, transport, queue):
    post_id = hold(rt, queue, "stranger@example.org")
    mod, owner = (
        moderate_link(transport, "mod@charity.example.org"),
        moderate_link(transport, "owner@trust.example.org"),
    )
    a, b = app.test_client(), app.test_client()
    page_a, page_b = a.get(mod), b.get(owner)
    assert (
        a.post(f"{mod}/{post_id}", data={"csrf_token": csrf_token(page_a.text), "action": "discard"}).status_code == 200
    )
    late = b.post(f"{owner}/{post_id}", data={"csrf_token": csrf_token(page_b.text), "action": "approve"})
    assert late.status_code == 409 and f"Post {post_id} is not held (it was discarded)." in late.text


def test_the_link_needs_a_current_moderator_csrf_and_a_known_action(app, rt, coalition, transport, queue, session):
    post_id = hold(rt, queue, "stranger@example.org")
    path = moderate_link(transport, "mod@charity.example.org")
    client = app.test_client()
    page = client.get(path)
    assert client.post(f"{path}/{post_id}", data={"action": "approve"}).status_code == 400  # no CSRF token
    bad = client.post(f"{path}/{post_id}", data={"csrf_token": csrf_token(page.text), "action": "publish"})
    assert bad.status_code == 400
    # Demoted (removed from the group): the link stops working.
    app.test_cli_runner().invoke(main, ["groups", "remove", "coalition", "mod@charity.example.org"])
    assert client.get(path).status_code == 410
    # A plain member's membership token never moderates, whatever the purpose claims.
    from mailer.groups import directory, service
    from mailer.groups.links import GroupLinks

    member = service.find_member(session, directory.get_group(session, "coalition"), "priya@nhs.example")
    link = GroupLinks(rt.settings).moderate(member.id, member.token_version)[len(BASE) :]
    assert client.get(link).status_code == 403
    session.expire_all()
    assert session.get(GroupPost, post_id).status == "held"


def test_a_web_only_member_gets_no_posts_but_hears_their_own_post_waits_and_was_rejected(
    app, rt, coalition, transport, queue
):
    runner = app.test_cli_runner()
    assert (
        runner.invoke(
            main, ["groups", "add", "coalition", "web@nhs.example", "--basis", "consent", "--delivery", "web"]
        ).exit_code
        == 0
    )
    theirs = hold(rt, queue, "web@nhs.example", subject="My proposal")
    other = hold(rt, queue, "priya@nhs.example", subject="Agenda")
    waiting = [
        message_from_bytes(m.data, policy=policy.default)
        for m in transport.messages
        if m.recipient == "web@nhs.example"
    ]
    assert [m["Subject"] for m in waiting] == ["Your message to Policy coalition is waiting for a moderator"]
    transport.messages.clear()
    assert runner.invoke(main, ["groups", "approve", str(other)]).exit_code == 0
    assert (
        runner.invoke(main, ["groups", "reject", str(theirs), "--reason", "Please send it to the chair."]).exit_code
        == 0
    )
    queue()
    to_them = [
        message_from_bytes(m.data, policy=policy.default)
        for m in transport.messages
        if m.recipient == "web@nhs.example"
    ]
    assert len(to_them) == 1  # the notice about their own post; no copy of the approved one
    assert to_them[0]["Subject"] == "Your message to Policy coalition was not posted"
    assert "Please send it to the chair." in to_them[0].get_body(("plain",)).get_content()
    assert "priya@nhs.example" in {m.recipient for m in transport.messages}  # every-message members got it
