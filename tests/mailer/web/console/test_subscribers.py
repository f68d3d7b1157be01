"""The console's subscriber screens: who may open them, the search (a filter builder,
never SQL), the profile, suppress, erase (with a confirmation), resend a link, export;
each action audited without personal data."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select, text

from mailer.content.models import Partner, Topic
from mailer.db import Base
from mailer.delivery.suppression import log_bounce
from mailer.inbound.models import InboundMessage
from mailer.staff import audit
from mailer.staff.models import AuditEntry
from mailer.staff.permissions import ROLE_PERMISSIONS, ROLES, SUBSCRIBERS_MANAGE
from subscribers import service, suppression
from subscribers.models import ERASED, UNSUBSCRIBED, Subscriber
from subscribers.search import Filter, conditions, search
from tests.conftest import BOTH_DIALECTS, csrf_token
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures)


@pytest.fixture
def people(session, demo):
    """The demo's subscribers plus three with known details; returns them by key."""
    topics = {t.slug: t for t in session.scalars(select(Topic))}
    partners = {p.slug: p for p in session.scalars(select(Partner))}
    made = {
        "priya": Subscriber(
            email="Priya.Shah@surgery.example",
            name="Priya Shah",
            organisation="Luton Road Surgery",
            organisation_type="gp_practice",
            practice_code="E81001",
            status="confirmed",
            topics=[topics["heart-health"]],
            partners=[partners["afiya-trust"]],
        ),
        "tom": Subscriber(
            email="tom_100%@trust.example",
            name="Tom Okoro",
            organisation="North Trust",
            status="pending",
            topics=[topics["mental-health"]],
            partners=[],
        ),
        "left": Subscriber(
            email="left@example.org",
            name="Lefty",
            organisation="Gone Ltd",
            status=UNSUBSCRIBED,
            topics=[topics["policy"]],
            partners=[partners["diverse-minds"]],
        ),
    }
    session.add_all(made.values())
    session.flush()
    for key, sub in made.items():
        service.record(session, sub, "subscribed", "form", "198.51.100.7" if key == "priya" else "203.0.113.5")
    session.commit()
    return made


def logged_in(app, staff, clock, role="editor"):  # noqa: F811
    client = app.test_client()
    user = staff[role]
    log_in(client, user, clock)
    return client


def entries(session, action):
    session.expire_all()
    return session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()


# --- who may open what ------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_the_subscriber_pages_only_with_the_permission(app, staff, clock, people, role):  # noqa: F811
    client = logged_in(app, staff, clock, role)
    sub = people["priya"]
    allowed = SUBSCRIBERS_MANAGE in ROLE_PERMISSIONS[role]
    for path in (
        "/admin/subscribers",
        f"/admin/subscribers/{sub.id}",
        f"/admin/subscribers/{sub.id}/erase",
        "/admin/subscribers/import",
    ):
        assert client.get(path).status_code == (200 if allowed else 403), (role, path)
    assert ('href="/admin/subscribers"' in client.get("/admin/").text) == allowed
    token = csrf_token(client.get("/admin/").text)
    for path in (
        f"/admin/subscribers/{sub.id}/suppress",
        f"/admin/subscribers/{sub.id}/send-link",
        f"/admin/subscribers/{sub.id}/erase",
        "/admin/subscribers/export",
    ):
        r = client.post(path, data={"csrf_token": token, "reason": "complaint", "confirm": "y"})
        if not allowed:
            assert r.status_code == 403, (role, path)


def test_a_logged_out_visitor_is_sent_to_log_in_and_changes_nothing(app, client, people, session):
    sub = people["priya"]
    for path in ("/admin/subscribers", f"/admin/subscribers/{sub.id}", "/admin/subscribers/import"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), path
    token = csrf_token(client.get("/admin/login").text)
    for path in (f"/admin/subscribers/{sub.id}/erase", f"/admin/subscribers/{sub.id}/suppress"):
        r = client.post(path, data={"csrf_token": token, "confirm": "y", "reason": "complaint"})
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login")
    session.expire_all()
    assert session.get(Subscriber, sub.id).status == "confirmed"
    assert not suppression.is_suppressed(session, sub.email)


# --- search -----------------------------------------------------------------------------


def test_the_search_filters_by_text_code_status_topic_and_partner(app, staff, clock, people, session):  # noqa: F811
    client = logged_in(app, staff, clock)
    heart = session.scalar(select(Topic).where(Topic.slug == "heart-health"))
    afiya = session.scalar(select(Partner).where(Partner.slug == "afiya-trust"))

    def found(**args):
        page = client.get("/admin/subscribers", query_string=args)
        assert page.status_code == 200
        return page.text

    assert "Priya.Shah@surgery.example" in found(q="luton road")  # organisation, any case
    assert "Priya.Shah@surgery.example" in found(q="priya.shah@SURGERY.example")  # a whole address
    assert "1 subscriber found" in found(practice_code="e81001")
    assert "tom_100%@trust.example" in found(status="pending") and "Priya" not in found(status="pending")
    both = [s for s in session.scalars(select(Subscriber)) if heart in s.topics and afiya in s.partners]
    only = found(topic=str(heart.id), partner=str(afiya.id))
    assert f"{len(both)} subscriber" in only and "Priya Shah" in only and "Lefty" not in only
    assert "Lefty" in found(status="unsubscribed")
    # garbage in a select or the page number is ignored, not an error
    assert found(status="'; DROP TABLE subscribers; --", topic="x", page="-3").count("<tr>") > 3


def test_search_text_is_data_never_sql_or_a_wildcard(session, people):
    assert search(session, Filter(text="%")).total == 1  # only Tom's address holds a %
    assert search(session, Filter(text="_")).total == 1  # ... and an underscore
    assert search(session, Filter(text="' OR '1'='1")).total == 0
    assert search(session, Filter(text="x' UNION SELECT email FROM subscribers --")).total == 0
    assert session.scalar(select(text("count(*)")).select_from(Subscriber)) >= 3  # nothing dropped


@BOTH_DIALECTS
def test_a_search_matches_within_one_field_and_is_an_index_scan_on_postgresql(session, people):
    """Address, name and organisation are searched as one joined text: a match must not
    span two of them. On PostgreSQL the search must find the trigram index (its
    expression is written twice, in the model and in the migration)."""
    assert search(session, Filter(text="shah@surgery")).total == 1  # within the address
    assert search(session, Filter(text="shah luton")).total == 0  # end of the name, start of the organisation
    assert search(session, Filter(text="surgery\x1fpriya")).total == 0  # the separator itself
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL enable_seqscan = off"))  # a table this small is read whole otherwise
        query = select(Subscriber.id).where(*conditions(Filter(text="luton road")))
        plan = "\n".join(
            session.execute(text("EXPLAIN " + str(query.compile(compile_kwargs={"literal_binds": True})))).scalars()
        )
        assert "ix_subscribers_search_text" in plan, plan


def test_the_search_pages_and_never_finds_erased_people(session, people):
    for i in range(120):
        session.add(Subscriber(email=f"bulk{i}@nhs.example", name=f"Bulk {i}", status="confirmed"))
    session.commit()
    first = search(session, Filter(text="nhs.example"), per_page=50)
    last = search(session, Filter(text="nhs.example"), page=3, per_page=50)
    assert (first.total, first.pages, len(first.subscribers), len(last.subscribers)) == (120, 3, 50, 20)
    assert first.subscribers[0].id > last.subscribers[-1].id  # newest first
    from subscribers.rights import erase

    erase(session, people["priya"])
    session.commit()
    assert search(session, Filter(text="erased")).total == 0


def test_the_search_pages_keep_the_filter(app, staff, clock, session, people):  # noqa: F811
    for i in range(60):
        session.add(Subscriber(email=f"bulk{i}@nhs.example", name=f"Bulk {i}", status="confirmed"))
    session.commit()
    client = logged_in(app, staff, clock)
    page = client.get("/admin/subscribers?q=nhs.example")
    assert "60 subscribers found" in page.text and "Page 1 of 2." in page.text
    assert 'href="/admin/subscribers?page=2&amp;q=nhs.example"' in page.text


# --- the profile and its actions ---------------------------------------------------------


def test_the_profile_shows_choices_ledger_deliveries_and_bounces(app, staff, clock, people, session):  # noqa: F811
    sub = people["priya"]
    log_bounce(session, None, sub.email, "soft", "452 mailbox full for Priya.Shah@surgery.example")
    session.commit()
    client = logged_in(app, staff, clock)
    page = client.get(f"/admin/subscribers/{sub.id}").text
    for expected in ("Priya Shah", "E81001", "Heart health", "Afiya Trust", "subscribed", "198.51.100.7"):
        assert expected in page, expected
    assert "452 mailbox full for &lt;recipient&gt;" in page  # the bounce, its address blanked
    assert "No edition has been sent to them yet." in page
    assert client.get("/admin/subscribers/999999").status_code == 404


def test_hostile_names_are_shown_as_text(app, staff, clock, session, demo):  # noqa: F811
    sub = Subscriber(email="x@example.org", name="<script>alert(1)</script>{{ 7*7 }}", status="confirmed")
    session.add(sub)
    session.commit()
    client = logged_in(app, staff, clock)
    for page in (
        client.get("/admin/subscribers?q=x@example.org").text,
        client.get(f"/admin/subscribers/{sub.id}").text,
    ):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}" in page and "<script>alert" not in page


def test_suppressing_unsubscribes_and_is_audited_without_the_address(app, staff, clock, people, session):  # noqa: F811
    sub = people["priya"]
    client = logged_in(app, staff, clock)
    token = csrf_token(client.get(f"/admin/subscribers/{sub.id}").text)
    r = client.post(f"/admin/subscribers/{sub.id}/suppress", data={"csrf_token": token, "reason": "complaint"})
    assert r.status_code == 302 and "The address is suppressed." in client.get(r.headers["Location"]).text
    session.expire_all()
    assert session.get(Subscriber, sub.id).status == UNSUBSCRIBED
    assert suppression.suppression_for(session, sub.email).reason == "complaint"
    [entry] = entries(session, "subscriber.suppress")
    assert (entry.actor, entry.object_type, entry.object_id, entry.ip) == (
        "editor",
        "subscribers",
        str(sub.id),
        "127.0.0.1",
    )
    assert entry.before == {"status": "confirmed", "suppressed": False}
    assert entry.after["reason"] == "complaint" and "Priya" not in str(entry.after)
    bad = client.post(f"/admin/subscribers/{sub.id}/suppress", data={"csrf_token": token, "reason": "erased"})
    assert bad.status_code == 400 and len(entries(session, "subscriber.suppress")) == 1
    no_token = client.post(f"/admin/subscribers/{sub.id}/suppress", data={"reason": "complaint"})
    assert no_token.status_code == 400


def test_resending_the_manage_link_emails_it_and_is_audited(app, staff, clock, people, session, queue, transport):  # noqa: F811
    client = logged_in(app, staff, clock)
    sub = people["priya"]
    token = csrf_token(client.get(f"/admin/subscribers/{sub.id}").text)
    r = client.post(f"/admin/subscribers/{sub.id}/send-link", data={"csrf_token": token})
    assert r.status_code == 302
    queue()
    [message] = [m for m in transport.messages if m.recipient == sub.email]
    assert b"/manage/" in message.data
    [entry] = entries(session, "subscriber.send_link")
    assert entry.after == {"email": "link"} and entry.object_id == str(sub.id)
    # a bounced address gets nothing, not even a link
    suppression.suppress(session, people["left"].email, "hard_bounce", "test")
    session.commit()
    r = client.post(f"/admin/subscribers/{people['left'].id}/send-link", data={"csrf_token": token})
    assert r.status_code == 400 and "no email goes to it" in r.text
    queue()
    assert not [m for m in transport.messages if m.recipient == people["left"].email]


@BOTH_DIALECTS
def test_erasing_asks_first_then_leaves_nothing_of_the_person(app, staff, clock, people, session, rt):  # noqa: F811
    sub = people["priya"]
    log_bounce(session, None, sub.email, "hard", "550 no such user Priya.Shah@surgery.example")
    kept_files, priya_files = mail_traces(session, rt, "Priya.Shah@surgery.example")
    session.commit()
    client = logged_in(app, staff, clock)
    page = client.get(f"/admin/subscribers/{sub.id}/erase")
    assert "cannot be undone" in page.text
    token = csrf_token(page.text)
    r = client.post(f"/admin/subscribers/{sub.id}/erase", data={"csrf_token": token})  # box not ticked
    assert r.status_code == 400 and "Tick the box" in r.text
    session.expire_all()
    assert session.get(Subscriber, sub.id).status == "confirmed"

    r = client.post(f"/admin/subscribers/{sub.id}/erase", data={"csrf_token": token, "confirm": "y"})
    assert r.status_code == 200 and f"Subscriber {sub.id} is erased" in r.text
    session.expire_all()
    assert session.get(Subscriber, sub.id).status == ERASED
    assert suppression.is_suppressed(session, "priya.shah@surgery.example")  # no import brings them back
    # Nothing in any table names them any more: not the address, name, organisation or
    # practice code, nor the IP in their ledger, nor the audit log.
    dump = []
    with session.bind.connect() as conn:
        for table in Base.metadata.sorted_tables:
            dump.extend(str(row) for row in conn.execute(table.select()))
    dump = "\n".join(dump).lower()
    for trace in ("priya", "shah", "surgery.example", "luton road", "e81001", "198.51.100.7"):
        # As a word: a random token may hold the letters (one held "...l6shaht2g...").
        assert not re.search(rf"(?<![a-z0-9]){re.escape(trace)}(?![a-z0-9])", dump), trace
    [entry] = entries(session, "subscriber.erase")
    assert entry.before == {"status": "confirmed"} and entry.after == {"status": "erased"}
    # nor the mail we received from them or wrote to them (the file outbox)
    assert not any(p.exists() for p in priya_files) and all(p.exists() for p in kept_files)
    assert [m.status for m in session.scalars(select(InboundMessage).order_by(InboundMessage.id))] == [
        "failed",
        "failed",
        "failed",
    ]
    assert client.get(f"/admin/subscribers/{sub.id}").status_code == 404


def mail_traces(session, rt, address):
    """Inbound rows and outbox emails that hold ``address`` (and one of each that does not):
    a failed message kept for an operator, one not yet processed, and two emails to them
    (one to someone else only). Returns the outbox paths (kept, theirs)."""
    from mailer.mail.transport import FileOutbox

    raw = f"From: Priya <{address}>\r\nTo: unsubscribe@x.example\r\nSubject: hi\r\n\r\nbye\r\n".encode()
    other = b"From: Sam <sam@elsewhere.example>\r\nSubject: hi\r\n\r\nhello\r\n"
    session.add_all(
        [
            InboundMessage(
                route="unsubscribe",
                recipient="unsubscribe@x.example",
                mail_from=address,
                raw=raw,
                status="failed",
                error="no token",
            ),
            InboundMessage(
                route="group", recipient="g@x.example", mail_from="bounce@x.example", raw=raw.upper(), status="received"
            ),
            InboundMessage(
                route="group", recipient="g@x.example", mail_from="sam@elsewhere.example", raw=other, status="failed"
            ),
        ]
    )
    outbox = FileOutbox(rt.settings.outbox_dir)
    before = set(rt.settings.outbox_dir.glob("*.eml")) if rt.settings.outbox_dir.exists() else set()
    outbox.send("b@x.example", address.lower(), f"To: {address}\r\nSubject: Your digest\r\n\r\nHello\r\n".encode())
    outbox.send(
        "b@x.example",
        "sam@elsewhere.example",
        f"To: sam@elsewhere.example\r\nReply-To: {address}\r\n\r\nA post\r\n".encode(),
    )
    theirs = set(rt.settings.outbox_dir.glob("*.eml")) - before
    outbox.send("b@x.example", "sam@elsewhere.example", b"To: sam@elsewhere.example\r\nSubject: x\r\n\r\nHello\r\n")
    kept = set(rt.settings.outbox_dir.glob("*.eml")) - before - theirs
    assert len(theirs) == 2 and len(kept) == 1
    return kept, theirs


def test_the_cli_erases_a_subscriber_with_their_mail(app, people, session, rt):
    from mailer.cli import main

    sub = people["priya"]
    kept, theirs = mail_traces(session, rt, sub.email)
    session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["subscribers", "erase", sub.email], input="n\n")
    assert result.exit_code == 1 and session.get(Subscriber, sub.id).status != ERASED  # asked; said no
    result = runner.invoke(main, ["subscribers", "erase", sub.email, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"Subscriber {sub.id} is erased; 2 outbox email(s)" in result.output
    session.expire_all()
    assert session.get(Subscriber, sub.id).status == ERASED
    assert not any(p.exists() for p in theirs) and all(p.exists() for p in kept)
    dump = " ".join(str((m.raw, m.mail_from)) for m in session.scalars(select(InboundMessage))).lower()
    assert "priya" not in dump and "sam@elsewhere.example" in dump
    [entry] = entries(session, "subscriber.erase")
    assert entry.actor.startswith("cli:") and entry.object_id == str(sub.id)
    assert runner.invoke(main, ["subscribers", "erase", "priya.shah@surgery.example", "--yes"]).exit_code == 1


def test_the_cli_erases_a_group_member_who_never_took_the_digest(app, rt, session):
    """A right-to-erasure request from someone known only to a group: their membership and
    posts go, other members stay, and an address nobody knows is refused."""
    from mailer.cli import main
    from mailer.groups.models import GroupMember, GroupPost

    runner = app.test_cli_runner()
    for args in (
        ["groups", "create", "net", "--name", "Network"],
        ["groups", "add", "net", "ade@trust.example", "bo@trust.example", "--basis", "consent"],
    ):
        assert runner.invoke(main, args).exit_code == 0
    group_id = session.scalar(select(GroupMember.group_id))
    session.add(
        GroupPost(
            group_id=group_id,
            status="approved",
            author_email="Ade@trust.example",
            author_name="Ade",
            raw=b"From: Ade <ade@trust.example>\r\n\r\nHi",
        )
    )
    session.commit()
    result = runner.invoke(main, ["subscribers", "erase", "ade@trust.example", "--yes"])
    assert result.exit_code == 0 and "group memberships and posts are erased" in result.output
    session.expire_all()
    keys = set(session.scalars(select(GroupMember.email_key)))
    assert "ade@trust.example" not in keys and "bo@trust.example" in keys
    post = session.scalar(select(GroupPost))
    assert post.author_email == "" and post.raw == b"" and post.status == "removed"
    [entry] = entries(session, "groups.person.erase")
    assert entry.actor.startswith("cli:") and "ade" not in str(entry.after).lower()
    refused = runner.invoke(main, ["subscribers", "erase", "nobody@trust.example", "--yes"])
    assert refused.exit_code == 1 and "No subscriber or group member" in refused.output


def test_export_writes_the_search_as_csv_and_is_audited(app, staff, clock, people, session):  # noqa: F811
    client = logged_in(app, staff, clock)
    page = client.get("/admin/subscribers?status=confirmed")
    token = csrf_token(page.text)
    assert 'action="/admin/subscribers/export?status=confirmed"' in page.text
    r = client.post("/admin/subscribers/export?status=confirmed", data={"csrf_token": token})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["status"] for row in rows} == {"confirmed"}
    assert "Priya.Shah@surgery.example" in {row["email"] for row in rows}
    assert "tom_100%@trust.example" not in r.text
    r = client.post("/admin/subscribers/export?q=Priya.Shah@surgery.example", data={"csrf_token": token})
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 1
    first, second = entries(session, "subscriber.export")
    assert first.after["status"] == "confirmed" and first.after["rows"] == len(rows)
    assert second.after == {"rows": 1, "text": True}  # the text typed (an address) is not logged
    assert client.get("/admin/subscribers/export").status_code == 405  # a download is an action: POST


def test_every_subscriber_action_lands_in_the_audit_log(app, staff, clock, people, session, queue):  # noqa: F811
    client = logged_in(app, staff, clock)
    sub = people["left"]
    token = csrf_token(client.get(f"/admin/subscribers/{sub.id}").text)
    client.post(f"/admin/subscribers/{sub.id}/send-link", data={"csrf_token": token})
    client.post(f"/admin/subscribers/{sub.id}/suppress", data={"csrf_token": token, "reason": "hard_bounce"})
    client.post("/admin/subscribers/export", data={"csrf_token": token})
    client.post(f"/admin/subscribers/{sub.id}/erase", data={"csrf_token": token, "confirm": "y"})
    queue()
    session.expire_all()
    logged = [e.action for e in audit.search(session, actor="editor", action="subscriber").entries[::-1]]
    assert logged == ["subscriber.send_link", "subscriber.suppress", "subscriber.export", "subscriber.erase"]
