"""The public group pages (mailer/web/groups/): join with double opt-in and its consent
record, confirm by button, one-click leave from a post's List-Unsubscribe (RFC 8058), and
a member's delivery choice."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from mailer.cli import main
from mailer.groups.models import GroupConsentEvent, GroupMember
from tests.conftest import csrf_token, links_in
from tests.factories import received_post

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


def test_the_directory_lists_every_group_with_its_page_and_members_only_archives_stay_unlinked(app, client, network):
    """/groups is where a network finds groups to join: each group by name with its member
    count and a link to its page; a public archive is linked, a members-only one is not;
    names are data, never markup."""
    run = app.test_cli_runner()
    assert run.invoke(main, ["groups", "create", "x", "--name", "<script>alert(1)</script> network"]).exit_code == 0
    page = client.get("/groups")
    assert page.status_code == 200
    html = page.text
    assert 'href="/groups/bme"' in html and 'href="/groups/open-group"' in html
    assert "BME networks" in html and "2 members" in html
    assert 'href="/groups/open-group/archive"' in html and 'href="/groups/bme/archive"' not in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; network" in html


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

    raw = f"From: {author}\r\nSubject: Hello\r\n\r\nHi all\r\n".encode()
    with rt.db.transaction() as s:
        received = received_post(s, slug, raw, author)
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
        (links.archive("x"), "groups.archive"),
        (links.post("x", 1), "groups.post"),
        (links.thread("x", 1), "groups.thread"),
        (links.web("x", 1, 1, 2).partition("?")[0], "groups.enter"),
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


# --- The archive: threads, permalinks, visibility, hostile mail, attachments, removal,
# --- posting from the web.

LIST = "ertg.example.org"


def email_post(rt, slug, raw: bytes, *, limit=None):
    """Receive ``raw`` for group ``slug`` as the LMTP route would; the stored post's id."""

    extra = {"attachment_max_bytes": limit} if limit else {}
    with rt.db.transaction() as s:
        got = received_post(s, slug, raw, "x@y.example", **extra)
    return got.post_id


def text_mail(author, subject, body, message_id, extra=""):
    return (
        f"From: {author}\r\nTo: g@{LIST}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


@pytest.fixture
def network(app, rt):
    """A members-only group: an owner, a moderator, two members; and a public group."""
    run = app.test_cli_runner()
    for args in (
        [
            "groups",
            "create",
            "bme",
            "--name",
            "BME networks",
            "--visibility",
            "members",
            "--owner",
            "chair@nhs.example",
        ],
        ["groups", "add", "bme", "priya@nhs.example", "sam@nhs.example", "--basis", "consent"],
        ["groups", "add", "bme", "mod@nhs.example", "--basis", "consent", "--role", "moderator"],
        ["groups", "create", "open-group", "--name", "Open group"],
        ["groups", "add", "open-group", "priya@nhs.example", "sam@nhs.example", "--basis", "consent"],
    ):
        result = run.invoke(main, args)
        assert result.exit_code == 0, result.output
    return "bme"


def enter(client, rt, session, slug, email):
    """Follow ``email``'s personal web link of group ``slug``: the member cookie is set."""
    from mailer.groups.directory import get_group
    from mailer.groups.links import GroupLinks
    from mailer.groups.service import find_member

    m = find_member(session, get_group(session, slug), email)
    resp = client.get(path(GroupLinks(rt.settings).web(slug, m.id, m.token_version)))
    assert resp.status_code == 302, resp.text
    return resp


def test_copies_archive_links_resolve_for_members_and_threads_list_newest_activity_first(
    app, rt, client, network, transport, queue, session
):
    from mailer.actors.groups import start_group_post

    first = email_post(rt, "bme", text_mail("Priya <priya@nhs.example>", "Joint event", "Shall we?\r\n", "<a@nhs>"))
    other = email_post(rt, "bme", text_mail("Sam <sam@nhs.example>", "Minutes", "Attached.\r\n", "<b@nhs>"))
    reply = email_post(
        rt, "bme", text_mail("Sam <sam@nhs.example>", "RE: Joint event", "Yes!\r\n", "<c@nhs>")
    )  # Outlook: no References; joins by subject
    rt.queue.send(start_group_post, reply)
    queue()
    (copy,) = mail_to(transport, "priya@nhs.example")
    archive_url = re.fullmatch(r"<(\S+)>", copy["List-Archive"]).group(1)
    archived_at = re.fullmatch(r"<(\S+)>", copy["Archived-At"]).group(1)
    assert path(archived_at) == f"/groups/bme/posts/{reply}"
    # Nobody but members: the links answer 403 with a way in, not 404.
    for url in (archive_url, archived_at):
        closed = client.get(path(url))
        assert closed.status_code == 403 and "for members only" in closed.text
        assert "Shall we" not in closed.text
    # The footer's personal link lets the member in on this browser.
    (raw,) = [m.data for m in transport.messages if m.recipient == "priya@nhs.example"]
    footer = message_from_bytes(raw, policy=policy.default).get_payload()[-1].get_content()  # the member's own part
    (web_link,) = re.findall(r"https://\S+/enter/\S+", footer)
    resp = client.get(path(web_link))
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/groups/bme/posts/{reply}")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/groups/bme" in cookie
    page = client.get(path(archived_at))
    assert page.status_code == 200 and "Yes!" in page.text and "The whole thread (2 messages)" in page.text
    assert page.headers["Cache-Control"] == "private, no-store"
    listing = client.get(path(archive_url))
    assert listing.status_code == 200
    assert listing.text.index("Joint event") < listing.text.index("Minutes")  # the reply made it newest
    thread = client.get(f"/groups/bme/threads/{first}")
    assert thread.text.index("Shall we?") < thread.text.index("Yes!")
    assert client.get(f"/groups/bme/threads/{other}").status_code == 200
    assert client.get("/groups/bme/threads/99999").status_code == 404


def test_the_thread_list_pages(app, rt, client, network, session, monkeypatch):
    from mailer.web.groups import archive as pages

    monkeypatch.setattr(pages, "PER_PAGE", 2)
    for n in range(5):
        email_post(rt, "open-group", text_mail("Priya <priya@nhs.example>", f"Topic {n}", "x\r\n", f"<t{n}@nhs>"))
    first = client.get("/groups/open-group/archive")
    assert "Topic 4" in first.text and "Topic 3" in first.text and "Topic 2" not in first.text
    assert "Page 1 of 3" in first.text and 'rel="next"' in first.text
    last = client.get("/groups/open-group/archive?page=3")
    assert "Topic 0" in last.text and "Topic 1" not in last.text
    assert client.get("/groups/open-group/archive?page=x").status_code == 200


def test_archive_visibility_per_role(app, rt, client, network, session):
    """Anyone reads a public archive; a members-only archive opens for its active members
    (not another group's, not a former member) and for staff whose role moderates groups."""
    from mailer.staff.accounts import create_user
    from tests.mailer.web.console.test_access import PASSWORD, post_login

    post_id = email_post(rt, "bme", text_mail("Priya <priya@nhs.example>", "Private", "Members only\r\n", "<p@nhs>"))
    public_id = email_post(rt, "open-group", text_mail("Priya <priya@nhs.example>", "Open", "Hello all\r\n", "<o@n>"))
    urls = [
        "/groups/bme/archive",
        f"/groups/bme/posts/{post_id}",
        f"/groups/bme/threads/{post_id}",
        "/groups/bme/archive?q=members",
    ]

    def statuses(c):
        return {c.get(u).status_code for u in urls}

    anonymous = app.test_client()
    assert statuses(anonymous) == {403}
    assert anonymous.get(f"/groups/open-group/posts/{public_id}").status_code == 200  # public: anyone
    # A member of the public group only: their cookie is scoped to that group's pages.
    other = app.test_client()
    enter(other, rt, session, "open-group", "priya@nhs.example")
    assert other.get("/groups/open-group/archive").status_code == 200
    outsider = app.test_client()
    from mailer.groups.directory import get_group
    from mailer.groups.service import find_member
    from mailer.web.groups.members import COOKIE
    from mailer.web.subscribers.common import tokens

    with app.test_request_context():
        m = find_member(session, get_group(session, "open-group"), "priya@nhs.example")
        foreign = tokens().make("group-web", m.id, m.token_version)
    outsider.set_cookie(COOKIE, foreign, path="/groups/bme")  # another group's member token
    assert statuses(outsider) == {403}
    member = app.test_client()
    enter(member, rt, session, "bme", "sam@nhs.example")
    assert statuses(member) == {200}
    # Removed by an owner: the cookie stops working at once.
    app.test_cli_runner().invoke(main, ["groups", "remove", "bme", "sam@nhs.example"])
    assert statuses(member) == {403}
    # Staff: a moderator's role may read every group's archive; a viewer's may not.
    create_user(session, "mona", "moderator", PASSWORD, actor="test")
    create_user(session, "vic", "viewer", PASSWORD, actor="test")
    session.commit()
    staff = app.test_client()
    assert post_login(staff, "mona").status_code == 302
    assert statuses(staff) == {200}
    viewer = app.test_client()
    assert post_login(viewer, "vic").status_code == 302
    assert statuses(viewer) == {403}
    # An announce-only group's archive is public.
    app.test_cli_runner().invoke(
        main, ["groups", "create", "news", "--name", "News", "--visibility", "announce", "--owner", "chair@nhs.example"]
    )
    announced = email_post(rt, "news", text_mail("Chair <chair@nhs.example>", "Announcement", "Hi\r\n", "<n@nhs>"))
    assert anonymous.get(f"/groups/news/posts/{announced}").status_code == 200


HOSTILE_HTML = """<html><head><style>body{color:red}</style><script>alert('head')</script></head>
<body><p>Dear all, <b>see</b> <img src=x onerror="alert(1)"> the plan.</p>
<script>alert('body')</script><p>Write to <a href="mailto:secret@trust.example">secret@trust.example</a>.</p>
</body></html>"""


def test_hostile_mail_is_shown_as_escaped_text_with_addresses_hidden(app, rt, client, network, session):
    raw = (
        'From: "<script>alert(2)</script> Priya" <priya@nhs.example>\r\nTo: open-group@ertg.example.org\r\n'
        "Subject: =?utf-8?b?PHNjcmlwdD5hbGVydCgzKTwvc2NyaXB0PiBQbGFu?=\r\nMessage-ID: <h@nhs>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + HOSTILE_HTML
    ).encode()
    post_id = email_post(rt, "open-group", raw)  # held: HTML with script
    assert client.get(f"/groups/open-group/posts/{post_id}").status_code == 404  # held posts are not archived
    with rt.db.transaction() as s:
        from mailer.groups import posting

        posting.approve(s, post_id, by="test")  # a moderator lets it through: the archive still shows only text
    page = client.get(f"/groups/open-group/posts/{post_id}")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert" not in html and "onerror" not in html and "<b>see</b>" not in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt; Plan" in html  # the decoded subject, as text
    assert "&lt;script&gt;alert(2)&lt;/script&gt; Priya" in html  # the author's name, as text
    assert "Dear all, see the plan." in html
    assert "alert(&#39;body&#39;)" not in html and "color:red" not in html  # script and style contents dropped
    assert "secret@trust.example" not in html and "priya@nhs.example" not in html
    assert "Write to [address hidden]" in html
    # Latin-1 mail that says so, and mail in a charset nobody knows, both read.
    latin = text_mail("Priya <priya@nhs.example>", "=?iso-8859-1?q?Caf=E9?=", "Caf\xe9 au lait\r\n", "<l@nhs>")
    latin = latin.replace(b"charset=utf-8", b"charset=iso-8859-1").replace("é".encode(), b"\xe9")
    unknown = text_mail("Priya <priya@nhs.example>", "Odd", "plain words\r\n", "<u@nhs>").replace(
        b"charset=utf-8", b"charset=x-no-such-charset"
    )
    for raw, expected in ((latin, "Café au lait"), (unknown, "plain words")):
        shown = client.get(f"/groups/open-group/posts/{email_post(rt, 'open-group', raw)}").text
        assert expected in shown


def test_quoted_text_is_folded_behind_details(app, rt, client, network):
    body = (
        "Count me in.\r\n\r\nOn Tue, 1 Dec 2026 at 09:00, Priya Shah <priya@nhs.example> wrote:\r\n"
        "> Shall we plan a joint event?\r\n"
    )
    post_id = email_post(rt, "open-group", text_mail("Sam <sam@nhs.example>", "Re: Event", body, "<q@nhs>"))
    html = client.get(f"/groups/open-group/posts/{post_id}").text
    new, _, folded = html.partition("<details")
    assert "Count me in." in new and "Shall we plan" not in new
    assert "Shall we plan a joint event?" in folded and "Show quoted text" in folded
    assert "priya@nhs.example" not in html


def attachment_mail(files) -> bytes:
    parts = "".join(
        f'--b\r\nContent-Type: {kind}; name="{name}"\r\nContent-Disposition: attachment; filename="{name}"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{__import__('base64').b64encode(data).decode()}\r\n"
        for name, kind, data in files
    )
    return (
        "From: Priya <priya@nhs.example>\r\nTo: open-group@ertg.example.org\r\nSubject: Files\r\n"
        'Message-ID: <f@nhs>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe files.\r\n" + parts + "--b--\r\n"
    ).encode()


def test_attachments_are_kept_under_the_limit_served_as_downloads_and_removed_with_the_post(
    app, rt, client, network, session
):
    from mailer.groups.models import GroupAttachment

    raw = attachment_mail(
        [
            ("../../evil.html", "text/html", b"<script>alert(1)</script>"),
            ("plan.pdf", "application/pdf", b"%PDF-1.4 small"),
            ("huge.bin", "application/octet-stream", b"x" * 3000),
        ]
    )
    post_id = email_post(rt, "open-group", raw, limit=2000)  # held (an HTML file with script)...
    with rt.db.transaction() as s:
        from mailer.groups import posting

        posting.approve(s, post_id, by="test", attachment_max_bytes=2000)  # ...filed when approved
    page = client.get(f"/groups/open-group/posts/{post_id}").text
    assert "huge.bin" in page and "not kept in the archive: too large" in page
    found = {a.filename: a for a in session.scalars(select(GroupAttachment))}
    assert set(found) == {"evil.html", "plan.pdf", "huge.bin"} and found["huge.bin"].data == b""
    ids = {name: a.id for name, a in found.items()}
    evil = client.get(f"/groups/open-group/attachments/{ids['evil.html']}/evil.html")
    assert evil.status_code == 200 and evil.data == b"<script>alert(1)</script>"
    assert evil.headers["Content-Type"] == "application/octet-stream"  # never text/html from our origin
    assert evil.headers["Content-Disposition"].startswith('attachment; filename="evil.html"')
    assert evil.headers["X-Content-Type-Options"] == "nosniff"
    pdf = client.get(f"/groups/open-group/attachments/{ids['plan.pdf']}/plan.pdf")
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert client.get(f"/groups/open-group/attachments/{ids['huge.bin']}/huge.bin").status_code == 404
    assert client.get(f"/groups/bme/attachments/{ids['plan.pdf']}/plan.pdf").status_code == 403
    # A moderator removes the post from the CLI: the attachments go with it (audited).
    result = app.test_cli_runner().invoke(
        main, ["groups", "remove-post", "open-group", str(post_id), "--reason", "spam"]
    )
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.scalars(select(GroupAttachment)).all() == []
    assert client.get(f"/groups/open-group/attachments/{ids['plan.pdf']}/plan.pdf").status_code == 404
    shown = client.get(f"/groups/open-group/posts/{post_id}").text
    assert "This message was removed by a moderator." in shown and "The files." not in shown
    again = app.test_cli_runner().invoke(main, ["groups", "remove-post", "open-group", str(post_id)])
    assert again.exit_code != 0 and "removed already" in again.output


def test_a_moderator_removes_a_post_on_the_web_and_it_is_audited(app, rt, client, network, session):
    from mailer.staff.models import AuditEntry

    post_id = email_post(rt, "bme", text_mail("Priya <priya@nhs.example>", "Oops", "Wrong group\r\n", "<w@nhs>"))
    member = app.test_client()
    enter(member, rt, session, "bme", "sam@nhs.example")
    page = member.get(f"/groups/bme/posts/{post_id}")
    assert "Remove this message" not in page.text  # plain members do not moderate
    token = csrf_token(member.get(f"/groups/bme/threads/{post_id}").text)  # the reply form's
    refused = member.post(f"/groups/bme/posts/{post_id}/remove", data={"csrf_token": token, "reason": "x"})
    assert refused.status_code == 403
    mod = app.test_client()
    enter(mod, rt, session, "bme", "mod@nhs.example")
    page = mod.get(f"/groups/bme/posts/{post_id}")
    assert "Remove this message from the archive" in page.text
    no_csrf = mod.post(f"/groups/bme/posts/{post_id}/remove", data={"reason": "wrong group"})
    assert no_csrf.status_code == 400
    done = mod.post(
        f"/groups/bme/posts/{post_id}/remove", data={"csrf_token": csrf_token(page.text), "reason": "wrong group"}
    )
    assert done.status_code == 302
    shown = mod.get(done.headers["Location"]).text
    assert "This message was removed by a moderator." in shown and "Wrong group" not in shown
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "groups.post.remove")).one()
    assert entry.actor == "moderator:mod@nhs.example" and entry.object_id == str(post_id)
    assert entry.after["reason"] == "wrong group"


def web_post(c, slug, **data):
    page = c.get(f"/groups/{slug}/new")
    return c.post(f"/groups/{slug}/new", data={"csrf_token": csrf_token(page.text), **data})


def test_posting_and_replying_on_the_web_follow_the_email_rules(app, rt, client, network, session, transport, queue):
    from mailer.groups.models import GroupPost

    priya = app.test_client()
    enter(priya, rt, session, "open-group", "priya@nhs.example")
    sent = web_post(priya, "open-group", subject="Plans for March", body="Shall we meet <b>on</b> the 3rd?")
    assert sent.status_code == 302 and "sent=posted" in sent.headers["Location"]
    thread = priya.get(sent.headers["Location"])
    assert "Your message was sent to the group." in thread.text
    assert "Shall we meet &lt;b&gt;on&lt;/b&gt; the 3rd?" in thread.text
    post = session.scalars(select(GroupPost)).one()
    assert (post.status, post.author_email, post.inbound_message_id is not None) == (
        "approved",
        "priya@nhs.example",
        True,
    )
    queue()  # delivered like an emailed post: one copy to each other member
    (copy,) = mail_to(transport, "sam@nhs.example")
    assert copy["Subject"] == "Plans for March" and copy["From"].addresses[0].addr_spec == "priya@nhs.example"
    # A reply on the thread page threads by its headers, for mail clients and the archive.
    sam = app.test_client()
    enter(sam, rt, session, "open-group", "sam@nhs.example")
    page = sam.get(f"/groups/open-group/threads/{post.id}")
    resp = sam.post(
        f"/groups/open-group/threads/{post.id}/reply", data={"csrf_token": csrf_token(page.text), "body": "Yes."}
    )
    assert resp.status_code == 302
    session.expire_all()
    reply = session.scalars(select(GroupPost).where(GroupPost.id != post.id)).one()
    assert (reply.thread_id, reply.in_reply_to, reply.subject) == (post.id, post.message_id, "Re: Plans for March")
    # Bad input: a clear error, nothing stored.
    empty = sam.post(
        f"/groups/open-group/threads/{post.id}/reply", data={"csrf_token": csrf_token(page.text), "body": "  "}
    )
    assert empty.status_code == 400 and "Write your message." in empty.text
    long = web_post(sam, "open-group", subject="Long", body="x" * 20_001)
    assert long.status_code == 400 and "20000 characters" in long.text.replace(",", "")
    no_csrf = sam.post("/groups/open-group/new", data={"subject": "S", "body": "B"})
    assert no_csrf.status_code == 400
    # Not a member: no form, nothing stored.
    stranger = app.test_client().get("/groups/open-group/new")
    assert "Only members post" in stranger.text
    assert app.test_client().post(f"/groups/open-group/threads/{post.id}/reply", data={"body": "x"}).status_code in (
        400,
        403,
    )
    assert session.scalar(select(func.count()).select_from(GroupPost)) == 2


def test_web_posts_are_held_like_email_in_a_moderated_group_and_limited(
    app, rt, client, network, session, transport, queue, monkeypatch
):
    from mailer.groups import posting
    from mailer.groups.models import GroupPost
    from mailer.web.groups import writing

    app.test_cli_runner().invoke(main, ["groups", "edit", "bme", "--policy", "moderated"])
    sam = app.test_client()
    enter(sam, rt, session, "bme", "sam@nhs.example")
    sent = web_post(sam, "bme", subject="Held?", body="Please approve me")
    assert sent.status_code == 302 and "sent=held" in sent.headers["Location"]
    assert "waiting for a moderator" in sam.get(sent.headers["Location"]).text
    post = session.scalars(select(GroupPost)).one()
    assert post.status == "held" and "members' posts are moderated" in post.hold_reason
    assert "Please approve me" not in sam.get("/groups/bme/archive?q=approve").text
    queue()  # the moderators are told, as for an emailed post
    assert {m.recipient for m in transport.messages} >= {"chair@nhs.example", "mod@nhs.example"}
    with rt.db.transaction() as s:
        posting.approve(s, post.id, by="moderator:mod@nhs.example")
    assert "Please approve me" in sam.get(f"/groups/bme/posts/{post.id}").text
    # Limits: a member's posts an hour.
    monkeypatch.setattr(writing, "PER_MEMBER", 1)
    refused = web_post(sam, "bme", subject="Again", body="More")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert session.scalar(select(func.count()).select_from(GroupPost)) == 1


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
