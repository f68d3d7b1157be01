"""The public group pages (mailer/web/groups/): join with double opt-in and its consent
record, confirm by button, one-click leave from a post's List-Unsubscribe (RFC 8058), and
a member's delivery choice."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer.cli import main
from mailer.groups.models import GroupConsentEvent, GroupMember
from tests.conftest import csrf_token, links_in

BASE = "https://digest.example.org"


@pytest.fixture(autouse=True)
def dmarc(monkeypatch):
    from mailer.actors import groups

    monkeypatch.setattr(groups, "resolver", lambda name: [])  # no DNS from tests


@pytest.fixture
def group(app, rt):
    result = app.test_cli_runner().invoke(
        main,
        [
            "groups",
            "create",
            "equality-leads",
            "--name",
            "Equality leads",
            "--description",
            "Discuss what works, with advice from Naz Project London.\nOpen to equality leads.",
        ],
    )
    assert result.exit_code == 0, result.output
    return "equality-leads"


def path(url: str) -> str:
    assert url.startswith(BASE), url
    return url[len(BASE) :]


def mail_to(transport, address):
    return [message_from_bytes(m.data, policy=policy.default) for m in transport.messages if m.recipient == address]


def member(session, email):
    session.expire_all()
    return session.scalar(select(GroupMember).where(GroupMember.email_key == email.lower()))


def ledger(session, m):
    return [
        (e.kind, e.source)
        for e in session.scalars(
            select(GroupConsentEvent).where(GroupConsentEvent.member_id == m.id).order_by(GroupConsentEvent.id)
        )
    ]


def join(client, slug, **fields):
    page = client.get(f"/groups/{slug}")
    data = {"csrf_token": csrf_token(page.text), "delivery": "every", **fields}
    return client.post(f"/groups/{slug}", data=data)


def test_join_takes_a_confirmed_opt_in_and_records_it(client, group, transport, queue, session):
    page = client.get("/groups/equality-leads")
    assert page.status_code == 200
    assert "Equality leads" in page.text and "equality-leads@ertg.example.org" in page.text
    assert "Naz Project London" in page.text

    refused = join(client, group, email="amara@trust.example.org")  # consent box not ticked
    assert refused.status_code == 400 and "Tick the box to agree" in refused.text
    assert member(session, "amara@trust.example.org") is None

    resp = join(client, group, email="Amara@trust.example.org", name="Amara", delivery="digest", consent="y")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/groups/equality-leads/check-email")
    assert "Check your email" in client.get(resp.headers["Location"]).text
    m = member(session, "amara@trust.example.org")
    assert (m.status, m.delivery, m.basis) == ("pending", "digest", "consent")
    queue()
    (msg,) = mail_to(transport, "Amara@trust.example.org")
    assert msg["Subject"] == "Please confirm you want to join Equality leads"
    assert msg["Auto-Submitted"] == "auto-generated"
    (link,) = [u for u in links_in(transport.messages[0].data) if "/groups/confirm/" in u]

    # Opening the link changes nothing (mail scanners open every link); the button joins.
    confirm = client.get(path(link))
    assert confirm.status_code == 200 and "as a daily digest" in confirm.text
    assert member(session, "amara@trust.example.org").status == "pending"
    done = client.post(path(link), data={"csrf_token": csrf_token(confirm.text)})
    assert done.status_code == 200 and "You have joined Equality leads" in done.text
    m = member(session, "amara@trust.example.org")
    assert m.status == "active" and m.joined_at is not None
    assert ledger(session, m) == [("requested", "form"), ("confirmed", "link")]
    event = session.scalars(select(GroupConsentEvent).where(GroupConsentEvent.kind == "confirmed")).one()
    assert event.wording_version and event.ip == "127.0.0.1"


def test_asking_again_for_a_member_reveals_nothing_and_changes_nothing(app, client, group, transport, queue, session):
    app.test_cli_runner().invoke(main, ["groups", "add", group, "lead@gp.example", "--basis", "consent"])
    resp = join(client, group, email="lead@gp.example", name="Someone Else", delivery="web", consent="y")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/check-email")
    queue()
    (msg,) = mail_to(transport, "lead@gp.example")
    assert msg["Subject"] == "You are already a member of Equality leads"
    m = member(session, "lead@gp.example")
    assert (m.status, m.delivery, m.name) == ("active", "every", "")


def test_one_click_leave_from_a_posts_header_needs_no_cookie_and_a_get_changes_nothing(
    app, rt, group, transport, queue, session
):
    """A post goes out; each copy's List-Unsubscribe is that member's one-click leave."""
    from mailer.actors.groups import start_group_post
    from mailer.groups import directory, posting

    runner = app.test_cli_runner()
    runner.invoke(main, ["groups", "add", group, "lead@gp.example", "nurse@trust.example.org", "--basis", "consent"])
    with rt.db.transaction() as s:
        g = directory.get_group(s, group)
        msg = message_from_bytes(b"From: lead@gp.example\r\nSubject: Hello\r\n\r\nHi all\r\n", policy=policy.compat32)
        raw = b"From: lead@gp.example\r\nSubject: Hello\r\nMessage-ID: <h@gp.example>\r\n\r\nHi all\r\n"
        received = posting.receive(s, g, msg, raw, "lead@gp.example", list_domain="ertg.example.org", max_recipients=25)
    assert received.action == "accept"
    rt.queue.send(start_group_post, received.post_id)
    queue()
    (copy,) = mail_to(transport, "nurse@trust.example.org")
    header = copy["List-Unsubscribe"]
    assert copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    leave = path(re.match(r"<(\S+)>, <mailto:", header).group(1))

    fresh = app.test_client()  # a mail client: no cookie, no CSRF token
    assert "Leave Equality leads?" in fresh.get(leave).text
    assert member(session, "nurse@trust.example.org").status == "active"
    resp = fresh.post(leave, data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert "You have left Equality leads" in resp.text
    m = member(session, "nurse@trust.example.org")
    assert m.status == "left" and ledger(session, m)[-1] == ("left", "one-click")
    assert member(session, "lead@gp.example").status == "active"
    assert fresh.post(leave, data={"nothing": "here"}).status_code == 400

    # The next post does not reach the member who left.
    transport.messages.clear()
    with rt.db.transaction() as s:
        g = directory.get_group(s, group)
        raw2 = raw.replace(b"<h@gp.example>", b"<h2@gp.example>")
        received = posting.receive(
            s, g, msg, raw2, "lead@gp.example", list_domain="ertg.example.org", max_recipients=25
        )
    rt.queue.send(start_group_post, received.post_id)
    queue()
    assert [m.recipient for m in transport.messages] == ["lead@gp.example"]


def test_a_member_chooses_web_only_and_gets_no_email(app, rt, client, group, transport, queue, session):
    from mailer.groups.links import GroupLinks

    app.test_cli_runner().invoke(main, ["groups", "add", group, "lead@gp.example", "--basis", "consent"])
    m = member(session, "lead@gp.example")
    page_path = path(GroupLinks(rt.settings).manage(m.id, m.token_version))
    page = client.get(page_path)
    field = f"m{m.id}-delivery"
    assert (
        page.status_code == 200
        and f'<input checked id="{field}-0" name="{field}" type="radio" value="every">' in page.text
    )
    resp = client.post(page_path, data={"csrf_token": csrf_token(page.text), field: "web"})
    assert resp.status_code == 200 and "Saved" in resp.text
    m = member(session, "lead@gp.example")
    assert m.delivery == "web" and ledger(session, m)[-1] == ("delivery", "link")
    bad = client.post(page_path, data={"csrf_token": csrf_token(page.text), field: "carrier-pigeon"})
    assert bad.status_code == 400 and member(session, "lead@gp.example").delivery == "web"

    app.test_cli_runner().invoke(main, ["groups", "add", group, "nurse@trust.example.org", "--basis", "consent"])
    post_and_deliver(rt, queue, group, "lead@gp.example")
    assert [m.recipient for m in transport.messages] == ["nurse@trust.example.org"]


def post_and_deliver(rt, queue, slug, author):
    """A member's post, accepted by the chain and delivered through the queue."""
    from mailer.actors.groups import start_group_post
    from mailer.groups import directory, posting

    raw = f"From: {author}\r\nSubject: Hello\r\n\r\nHi all\r\n".encode()
    msg = message_from_bytes(raw, policy=policy.compat32)
    with rt.db.transaction() as s:
        received = posting.receive(
            s, directory.get_group(s, slug), msg, raw, author, list_domain="ertg.example.org", max_recipients=25
        )
    assert received.action == "accept", received
    rt.queue.send(start_group_post, received.post_id)
    queue()


def test_forged_and_wrong_purpose_group_links_are_refused(app, rt, client, group, session):
    from mailer.groups.links import GroupLinks

    app.test_cli_runner().invoke(main, ["groups", "add", group, "lead@gp.example", "--basis", "consent"])
    m = member(session, "lead@gp.example")
    links = GroupLinks(rt.settings)
    manage = path(links.manage(m.id, m.token_version))
    as_leave = manage.replace("/groups/member/", "/groups/leave/")
    resp = app.test_client().post(as_leave, data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 400 and "This link is for something else" in resp.text
    assert client.get("/groups/leave/forged-token").status_code == 400
    assert member(session, "lead@gp.example").status == "active"
    assert client.get("/groups/no-such-group").status_code == 404
    # Removed by an owner: their old links stop working.
    app.test_cli_runner().invoke(main, ["groups", "remove", group, "lead@gp.example"])
    assert client.get(manage).status_code == 410


def test_email_links_are_routes_of_the_app(app, rt):
    from mailer.groups.links import GroupLinks

    links = GroupLinks(rt.settings)
    adapter = app.url_map.bind("digest.example.org", url_scheme="https")
    for url, endpoint in (
        (links.page("x"), "groups.group_page"),
        (links.confirm(1, 1), "groups.confirm"),
        (links.leave(1, 1), "groups.leave"),
        (links.manage(1, 1), "groups.member"),
        (links.moderate(1, 1), "groups.held"),
    ):
        assert adapter.match(path(url), method="GET")[0] == endpoint


def test_a_former_owner_who_joins_again_from_the_page_is_a_plain_member(
    app, rt, client, group, transport, queue, session
):
    from mailer.groups.links import GroupLinks

    app.test_cli_runner().invoke(
        main, ["groups", "add", group, "chair@gp.example", "--basis", "contract", "--role", "owner"]
    )
    m = member(session, "chair@gp.example")
    assert (
        app.test_client()
        .post(path(GroupLinks(rt.settings).leave(m.id, m.token_version)), data={"List-Unsubscribe": "One-Click"})
        .status_code
        == 200
    )
    join(client, group, email="chair@gp.example", consent="y")
    queue()
    (link,) = [u for u in links_in(transport.messages[-1].data) if "/groups/confirm/" in u]
    page = client.get(path(link))
    client.post(path(link), data={"csrf_token": csrf_token(page.text)})
    m = member(session, "chair@gp.example")
    assert (m.status, m.role) == ("active", "member")
    assert [k for k, _ in ledger(session, m)] == ["added", "left", "requested", "confirmed"]


def test_one_preference_page_for_the_digest_and_every_group_and_get_changes_nothing(
    app, rt, client, group, session, demo
):
    """From a group email's manage link or the digest's: one page with the digest's
    choices and every group of the address, each changeable there; a GET changes nothing."""
    from mailer.groups.links import GroupLinks
    from subscribers.links import Links
    from subscribers.models import Subscriber

    runner = app.test_cli_runner()
    assert runner.invoke(main, ["groups", "create", "coalition", "--name", "Policy <coalition>"]).exit_code == 0
    sub = session.scalars(select(Subscriber).where(Subscriber.status == "confirmed").order_by(Subscriber.id)).first()
    email = sub.email
    for slug in (group, "coalition"):
        assert runner.invoke(main, ["groups", "add", slug, email.upper(), "--basis", "consent"]).exit_code == 0
    assert runner.invoke(main, ["groups", "add", group, "someone@else.example", "--basis", "consent"]).exit_code == 0
    from mailer.groups.directory import get_group
    from mailer.groups.service import find_member

    leads = find_member(session, get_group(session, group), email)
    coalition = find_member(session, get_group(session, "coalition"), email)

    def state():
        session.expire_all()
        return [
            (m.status, m.delivery) for m in (session.get(GroupMember, leads.id), session.get(GroupMember, coalition.id))
        ]

    before = state()
    group_link = path(GroupLinks(rt.settings).manage(leads.id, leads.token_version))
    digest_link = path(Links(rt.settings).manage(sub.id, sub.token_version))
    for link in (group_link, digest_link):
        page = client.get(link)
        assert page.status_code == 200, link
        text = page.text
        assert "Save my preferences" in text  # the digest's choices
        assert "Equality leads" in text and "Policy &lt;coalition&gt;" in text  # every group, escaped
        assert "someone@else.example" not in text  # nobody else's
        assert f'name="m{leads.id}-delivery"' in text and f'name="m{coalition.id}-delivery"' in text
        assert text.count("Leave ") >= 2
    # A group email's link is quoted to whole lists in replies: it opens the digest's
    # choices, never the data pages (download, erase, replace links).
    page = client.get(group_link)
    assert "Download my data" not in page.text and "Replace all my links" not in page.text
    choices_token = re.search(r'action="/manage/([^"/]+)"', page.text).group(1)
    for data_page in (f"/manage/{choices_token}/data", f"/manage/{choices_token}/erase"):
        refused = client.get(data_page)
        assert refused.status_code == 400 and "change your digest choices" in refused.text, data_page
    assert "Download my data" in client.get(digest_link).text  # the digest's own link: all of it
    # Following every link on the page with GET changes nothing (mail scanners do).
    for href in set(re.findall(r'(?:href|action)="(/[^"]+)"', page.text)):
        client.get(href)
    assert state() == before

    # Change the coalition's delivery from the page reached through the digest's link.
    page = client.get(digest_link)
    section = page.text.split(f'id="group-{coalition.id}"')[1]
    coalition_form = re.search(r'<form method="post" action="(/groups/member/[^"]+)">', section)
    resp = client.post(
        coalition_form.group(1), data={"csrf_token": csrf_token(page.text), f"m{coalition.id}-delivery": "digest"}
    )
    assert resp.status_code == 200 and "Saved: one email a day from Policy &lt;coalition&gt;." in resp.text
    assert "Save my preferences" in resp.text  # still the one page
    assert state() == [("active", "every"), ("active", "digest")]
    assert ledger(session, coalition)[-1] == ("delivery", "link")

    # Leave the other group from the page reached through a group email's link.
    page = client.get(group_link)
    section = page.text.split(f'id="group-{leads.id}"')[1]
    leave_action = re.search(r'action="(/groups/member/[^"]+/leave)"', section).group(1)
    assert client.post(leave_action, data={}).status_code in (400, 403)  # no CSRF token: nothing
    assert state() == [("active", "every"), ("active", "digest")]
    resp = client.post(leave_action, data={"csrf_token": csrf_token(page.text)})
    assert resp.status_code == 200 and "You have left Equality leads." in resp.text
    assert state() == [("left", "every"), ("active", "digest")]
    assert ledger(session, leads)[-1] == ("left", "link")
    assert "Equality leads</a></h3>" not in resp.text and "Policy &lt;coalition&gt;</a></h3>" in resp.text
