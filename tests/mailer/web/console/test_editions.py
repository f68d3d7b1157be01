"""The console's editions screens: build and edit an edition, preview and test-send it as any
reader, approve it as a second person, see who will and will not get it, send it, watch the
send and read its ledger; who may do which, and the audit trail of each step."""

from __future__ import annotations

import re
from datetime import date, timedelta
from email import message_from_bytes, policy

import pyotp
import pytest
from sqlalchemy import select

from mailer.delivery.models import SENT, SKIPPED, UNKNOWN, Delivery
from mailer.digest.models import Edition
from mailer.staff import audit, twofactor
from mailer.staff.accounts import create_user
from mailer.staff.permissions import EDITIONS_APPROVE, EDITIONS_EDIT, EDITIONS_SEND, ROLE_PERMISSIONS, ROLES
from subscribers import suppression
from subscribers.links import Links
from subscribers.models import PENDING as SUB_PENDING
from subscribers.models import UNSUBSCRIBED, Subscriber
from tests.conftest import csrf_token
from tests.factories import PERIOD, standard_world
from tests.mailer.web.console.test_access import PASSWORD, clock, log_in, staff  # noqa: F401  (fixtures)

BASE = f"/admin/editions/{PERIOD}"


@pytest.fixture
def world(session):
    """The standard catalogue and readers of every kind: two who get the edition, one whose
    choices match nothing in it, and one each unconfirmed, paused, suppressed, unsubscribed."""
    w = standard_world(session)
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    w.subscriber("david@x.org", topics=["mental-health"], name="David Okafor")
    w.subscriber("nomatch@x.org", topics=[])
    w.subscriber("pending@x.org", topics=["sexual-health"], status=SUB_PENDING)
    paused = w.subscriber("paused@x.org", topics=["sexual-health"])
    paused.paused_until = date.today() + timedelta(days=30)
    w.subscriber("gone@x.org", topics=["sexual-health"])
    suppression.suppress(session, "gone@x.org", "hard_bounce", "test")
    w.subscriber("left@x.org", topics=["sexual-health"], status=UNSUBSCRIBED)
    session.commit()
    return w


@pytest.fixture
def editor2(session):
    """A second editor (two-factor set up), to approve what the first one changed."""
    user = create_user(session, "editor2", "editor", PASSWORD, actor="test")
    user.secret = pyotp.random_base32()
    twofactor.set_secret(session, user, user.secret)
    session.commit()
    return user


def as_user(app, user, clock):  # noqa: F811
    client = app.test_client()
    if user.role in ("moderator", "viewer"):
        user.totp_secret = None
    log_in(client, user, clock)
    return client


def post(client, url, data=None, page=None):
    """POST ``data`` with a CSRF token taken from ``page`` (default: the editions list)."""
    token = csrf_token(client.get(page or "/admin/editions").text) if page is not False else "x"
    return client.post(url, data={"csrf_token": token, **(data or {})})


def actions(session, edition_id):
    session.expire_all()
    return [e.action for e in audit.search(session, object_type="editions", object_id=str(edition_id)).entries[::-1]]


def build(client):
    r = post(client, "/admin/editions", {"period": PERIOD})
    assert r.status_code == 302 and r.headers["Location"] == BASE, r.text
    return r


def edition(session) -> Edition:
    session.expire_all()
    return session.scalar(select(Edition).where(Edition.period == PERIOD))


# --- who may do what --------------------------------------------------------------------

GETS = {
    "/admin/editions": EDITIONS_EDIT,
    BASE: EDITIONS_EDIT,
    f"{BASE}/preview?topic=1": EDITIONS_EDIT,
    f"{BASE}/frame?topic=1": EDITIONS_EDIT,
    f"{BASE}/recipients": EDITIONS_EDIT,
    f"{BASE}/sending": EDITIONS_EDIT,
    f"{BASE}/progress.json": EDITIONS_EDIT,
    f"{BASE}/ledger": EDITIONS_EDIT,
}
POSTS = {
    "/admin/editions": EDITIONS_EDIT,
    f"{BASE}/edit": EDITIONS_EDIT,
    f"{BASE}/rebuild": EDITIONS_EDIT,
    f"{BASE}/test-send": EDITIONS_EDIT,
    f"{BASE}/approve": EDITIONS_APPROVE,
    f"{BASE}/reject": EDITIONS_APPROVE,
    f"{BASE}/schedule": EDITIONS_SEND,
    f"{BASE}/unschedule": EDITIONS_SEND,
    f"{BASE}/send": EDITIONS_SEND,
    f"{BASE}/pause": EDITIONS_SEND,
    f"{BASE}/resume": EDITIONS_SEND,
    f"{BASE}/cancel": EDITIONS_SEND,
    f"{BASE}/resend-unknown": EDITIONS_SEND,
}


def test_every_editions_view_sends_a_logged_out_visitor_to_log_in(app, world):
    anon = app.test_client()
    for url in GETS:
        r = anon.get(url)
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), url
    token = csrf_token(anon.get("/admin/login").text)
    for url in POSTS:
        r = anon.post(url, data={"csrf_token": token, "period": PERIOD})
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), url


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_and_does_exactly_what_its_permissions_allow(app, world, staff, clock, session, role):  # noqa: F811
    # the edition exists (built by the monthly job: nobody's draft), so pages have something to show
    from mailer.digest.editions import build_edition

    build_edition(session, PERIOD)
    session.commit()
    client = as_user(app, staff[role], clock)
    allowed = ROLE_PERMISSIONS[role]
    for url, permission in GETS.items():
        r = client.get(url)
        if permission in allowed:
            assert r.status_code == 200, (role, url, r.status_code)
        else:
            assert r.status_code == 403, (role, url)
    token = csrf_token(client.get("/admin/").text)
    for url, permission in POSTS.items():
        if permission in allowed:
            continue  # what each allowed action does is tested below
        r = client.post(url, data={"csrf_token": token, "period": "2027-01", "reason": "no", "to": "a@x.org"})
        assert r.status_code == 403, (role, url)
    assert actions(session, edition(session).id) == []  # nothing refused left a trace
    assert session.scalar(select(Edition).where(Edition.period == "2027-01")) is None
    nav = client.get("/admin/").text
    assert ('href="/admin/editions"' in nav) == (EDITIONS_EDIT in allowed)


def test_pages_carry_the_strict_policy_and_frames_their_own(app, world, staff, clock):  # noqa: F811
    client = as_user(app, staff["editor"], clock)
    build(client)
    for url in GETS:
        r = client.get(url)
        html, csp = r.text, r.headers["Content-Security-Policy"]
        assert r.headers["Cache-Control"] == "no-store", url
        if "/frame" in url:
            # the email's own styles are inline; nothing in it runs, and only we may frame it
            assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
            assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
            continue
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, url
        assert ("frame-src 'self'" in csp) == ("/preview" in url), url
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), url
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.I), url


# --- build, edit, approve ---------------------------------------------------------------


def test_the_list_pages_through_editions_newest_first_and_a_bad_month_is_refused(app, staff, clock, session):  # noqa: F811
    for year in (2024, 2025, 2026):
        for month in range(1, 11):
            session.add(Edition(period=f"{year}-{month:02d}", subject=f"Edition {year}-{month:02d}"))
    session.commit()
    client = as_user(app, staff["editor"], clock)
    first = client.get("/admin/editions").text
    assert "30 in all; page 1 of 2" in first and first.count('<th scope="row">') == 24
    assert first.index("2026-10") < first.index("2026-09") and "2024-06" not in first
    second = client.get("/admin/editions?page=2").text
    assert second.count('<th scope="row">') == 6 and "2024-01" in second
    r = post(client, "/admin/editions", {"period": "2026-13"})
    assert r.status_code == 400 and "Period must look like 2026-11" in r.text
    assert session.scalar(select(Edition).where(Edition.period == "2026-13")) is None


def test_build_and_edit_are_audited_with_before_and_after_and_the_items_can_be_reordered(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
):
    client = as_user(app, staff["editor"], clock)
    build(client)
    page = client.get(BASE)
    assert page.status_code == 200 and "PrEP clinic evenings" in page.text
    assert "someone other than editor must approve it" in page.text
    items = world.items
    prep, screen = items["prep"].id, items["screen"].id
    # The sexual-health section shows "screen" (newer) before "prep"; the editor puts prep first.
    r = post(
        client,
        f"{BASE}/edit",
        {
            "subject": "December: clinics and screening",
            "preheader": "Two new clinics",
            "intro": "Hello all.\nA note.",
            "featured": str(items["letter"].id),
            f"pos-{prep}": "1",
            f"pos-{screen}": "2",
        },
        page=BASE,
    )
    assert r.status_code == 302 and "Saved" in client.get(r.headers["Location"]).text
    ed = edition(session)
    assert (ed.subject, ed.preheader, ed.intro, ed.featured_item_id) == (
        "December: clinics and screening",
        "Two new clinics",
        "Hello all.\nA note.",
        items["letter"].id,
    )
    assert ed.item_order[0] == prep and ed.changed_by_id == staff["editor"].id
    frame = client.get(f"{BASE}/frame?topic={world.topics['sexual-health'].id}").text
    assert frame.index("PrEP clinic evenings") < frame.index("Heart screening for Asian patients")

    assert actions(session, ed.id) == ["edition.build", "edition.edit"]
    entry = audit.search(session, action="edition.edit").entries[0]
    assert entry.actor == "editor" and entry.ip == "127.0.0.1"
    assert entry.before["subject"] == "Your campaign digest - December 2026"
    assert entry.after["subject"] == "December: clinics and screening"
    assert entry.after["item_order"][0] == prep and entry.before["item_order"] is None

    # Saving the form unchanged records nothing; hostile text stays text; bad input changes nothing.
    same = {
        "subject": ed.subject,
        "preheader": ed.preheader,
        "intro": ed.intro,
        "featured": str(ed.featured_item_id),
    }
    r = post(client, f"{BASE}/edit", same, page=BASE)
    assert "Nothing changed" in client.get(r.headers["Location"]).text
    r = post(client, f"{BASE}/edit", {**same, "subject": "a\x07b"}, page=BASE)
    assert r.status_code == 400 and "control characters" in r.text
    r = post(client, f"{BASE}/edit", {**same, "featured": "999999"}, page=BASE)
    assert r.status_code == 400 and "not in the 2026-12 edition" in r.text
    r = post(client, f"{BASE}/edit", {**same, f"pos-{prep}": "first"}, page=BASE)
    assert r.status_code == 400 and "whole number" in r.text
    r = post(client, f"{BASE}/edit", {**same, "subject": "<script>alert(1)</script>"}, page=BASE)
    page = client.get(BASE).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert actions(session, ed.id) == ["edition.build", "edition.edit", "edition.edit"]


@pytest.mark.dialects("sqlite", "postgresql")
def test_an_edition_changed_by_one_person_must_be_approved_by_another_before_it_goes(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
    editor2,
    queue,
):
    first = as_user(app, staff["editor"], clock)
    build(first)
    # The person who built it can neither approve it, nor schedule or send it unapproved.
    r = post(first, f"{BASE}/approve", page=BASE)
    assert r.status_code == 409 and "someone else must approve it" in r.text
    r = post(first, f"{BASE}/send", page=BASE)
    assert r.status_code == 409 and "must be approved by someone other" in r.text
    r = post(first, f"{BASE}/schedule", {"when": "2030-01-01T09:00"}, page=BASE)
    assert r.status_code == 409 and "must be approved" in r.text
    assert edition(session).status == "draft"

    second = as_user(app, editor2, clock)
    r = post(second, f"{BASE}/reject", {"reason": "The intro is missing."}, page=BASE)
    assert r.status_code == 302
    r = post(second, f"{BASE}/approve", page=BASE)
    assert r.status_code == 302 and edition(session).approved_by_id == editor2.id
    assert "Approved by editor2" in first.get(BASE).text

    # A change after the approval voids it; the scheduled edition goes back to draft.
    r = post(first, f"{BASE}/schedule", {"when": "2020-01-01T09:00"}, page=BASE)
    assert r.status_code == 409 and 'id="when-error">The schedule time 2020-01-01 09:00 GMT is in the past' in r.text
    r = post(first, f"{BASE}/schedule", {"when": "2030-01-01T09:00"}, page=BASE)
    assert r.status_code == 302 and edition(session).status == "scheduled"
    assert post(first, f"{BASE}/unschedule", page=BASE).status_code == 302 and edition(session).status == "draft"
    assert post(first, f"{BASE}/schedule", {"when": "2030-01-01T09:00"}, page=BASE).status_code == 302
    assert edition(session).scheduled_for.hour == 9  # 09:00 in London is 09:00 UTC in January
    post(first, f"{BASE}/edit", {"subject": "Changed after approval", "featured": ""}, page=BASE)
    ed = edition(session)
    assert (ed.status, ed.approved_by_id) == ("draft", None)
    assert post(first, f"{BASE}/send", page=BASE).status_code == 409
    # a rebuild (new approvals picked up) is a change too, by whoever rebuilds
    assert post(second, f"{BASE}/rebuild", page=BASE).status_code == 302
    assert edition(session).changed_by_id == editor2.id
    assert post(second, f"{BASE}/approve", page=BASE).status_code == 409
    assert post(first, f"{BASE}/approve", page=BASE).status_code == 302
    r = post(first, f"{BASE}/send", page=BASE)
    assert r.status_code == 302 and r.headers["Location"] == f"{BASE}/sending"
    queue()
    assert edition(session).status == "sent"
    assert actions(session, ed.id) == [
        "edition.build",
        "edition.reject",
        "edition.approve",
        "edition.schedule",
        "edition.unschedule",
        "edition.schedule",
        "edition.edit",
        "edition.build",
        "edition.approve",
        "edition.send",
    ]
    reject = audit.search(session, action="edition.reject").entries[0]
    assert reject.actor == "editor2" and reject.after["reason"] == "The intro is missing."


def test_with_the_second_approver_off_one_person_may_send_their_own_edition(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
    queue,
    settings,
):
    from mailer import runtime

    runtime.current().settings.__dict__["require_second_approver"] = False  # frozen dataclass: tests only
    try:
        client = as_user(app, staff["editor"], clock)
        build(client)
        assert "Not required on this deployment" in client.get(BASE).text
        assert post(client, f"{BASE}/send", page=BASE).status_code == 302
        queue()
        assert edition(session).status == "sent"
    finally:
        runtime.current().settings.__dict__["require_second_approver"] = True


# --- preview and test sends -------------------------------------------------------------


def test_preview_as_a_subscriber_or_as_choices_shows_their_copy_in_sandboxed_frames(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
    settings,
):
    client = as_user(app, staff["editor"], clock)
    build(client)
    page = client.get(f"{BASE}/preview?subscriber=amina@x.org")
    assert page.status_code == 200
    frames = re.findall(r'<iframe class="(desktop|mobile)"[^>]* src="([^"]+)" sandbox>', page.text)
    assert [c for c, _ in frames] == ["desktop", "mobile"]
    src = frames[0][1].replace("&amp;", "&")
    copy = client.get(src)
    assert "Hello Amina Rahman," in copy.text and "PrEP clinic evenings" in copy.text
    assert "BME staff networks meet" not in copy.text  # David's topic
    amina = session.scalar(select(Subscriber).where(Subscriber.email == "amina@x.org"))
    assert Links(settings).manage(amina.id, amina.token_version) not in copy.text  # her links stay hers
    text = client.get(src + "&format=text")
    assert text.mimetype == "text/plain" and "PrEP clinic evenings" in text.text

    minds = world.partners["minds"].id
    copy = client.get(f"{BASE}/frame?partner={minds}").text
    assert "BME staff networks meet" in copy and "PrEP clinic evenings" not in copy
    assert client.get(f"{BASE}/preview?subscriber=nobody@x.org").status_code == 400
    assert "is pending" in client.get(f"{BASE}/preview?subscriber=pending@x.org").text
    assert client.get(f"{BASE}/frame").status_code == 400
    assert client.get(f"{BASE}/frame?topic=99999").status_code == 400


def test_a_test_send_goes_to_any_address_as_the_chosen_reader_limited_and_audited(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
    transport,
    settings,
):
    client = as_user(app, staff["editor"], clock)
    build(client)
    page = f"{BASE}/preview?subscriber=david@x.org"
    r = post(client, f"{BASE}/test-send", {"subscriber": "david@x.org", "to": "Checker@Example.org"}, page=page)
    assert r.status_code == 200 and "Sent a test to Checker@example.org" in r.text
    (sent,) = transport.messages
    assert sent.recipient == "Checker@example.org"
    msg = message_from_bytes(sent.data, policy=policy.default)
    assert msg["Subject"].startswith("[Test] ")
    body = msg.get_body(("plain",)).get_content()
    assert "BME staff networks meet" in body and "PrEP clinic evenings" not in body  # as David reads it
    david = session.scalar(select(Subscriber).where(Subscriber.email == "david@x.org"))
    assert Links(settings).manage(david.id, david.token_version) not in body  # links act on nobody
    entry = audit.search(session, action="edition.test_send").entries[0]
    assert entry.actor == "editor" and entry.after == {"to": "Checker@example.org", "as": "subscriber david@x.org"}

    r = post(client, f"{BASE}/test-send", {"subscriber": "david@x.org", "to": "not an address"}, page=page)
    assert r.status_code == 400 and len(transport.messages) == 1
    for _ in range(settings.preview_sends_per_address - 1):
        assert (
            post(
                client, f"{BASE}/test-send", {"subscriber": "david@x.org", "to": "checker@example.org"}, page=page
            ).status_code
            == 200
        )
    r = post(client, f"{BASE}/test-send", {"subscriber": "david@x.org", "to": "checker@example.org"}, page=page)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and "nothing was sent" in r.text
    assert len(transport.messages) == settings.preview_sends_per_address
    assert len(audit.search(session, action="edition.test_send").entries) == settings.preview_sends_per_address


# --- recipients preview, sending, watching, the ledger ----------------------------------


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'id="count-([a-z-]+)">(\d+)<', html)}


@pytest.mark.dialects("sqlite", "postgresql")
def test_the_recipients_preview_is_what_the_send_then_does(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
    editor2,
    queue,
    transport,
):
    client = as_user(app, staff["editor"], clock)
    build(client)
    page = client.get(f"{BASE}/recipients")
    assert _counts(page.text) == {
        "will-get": 2,
        "no-items": 1,
        "unconfirmed": 1,
        "paused": 1,
        "suppressed": 1,
        "unsubscribed": 1,
        "already": 0,
        "other": 0,
    }
    assert "amina@x.org" in page.text and "david@x.org" in page.text
    # the send was tried and undone: nothing of it is left
    assert edition(session).status == "draft" and session.scalars(select(Delivery)).all() == []
    for reason, address in (
        ("no-items", "nomatch@x.org"),
        ("unconfirmed", "pending@x.org"),
        ("paused", "paused@x.org"),
        ("suppressed", "gone@x.org"),
        ("unsubscribed", "left@x.org"),
    ):
        listed = client.get(f"{BASE}/recipients?reason={reason}").text
        assert address in listed and "amina@x.org" not in listed, reason
    post(as_user(app, editor2, clock), f"{BASE}/approve", page=BASE)
    post(client, f"{BASE}/send", page=BASE)
    queue()
    session.expire_all()
    rows = session.execute(
        select(Subscriber.email, Delivery.status).join(Delivery, Delivery.subscriber_id == Subscriber.id)
    ).all()
    assert sorted(rows) == [("amina@x.org", SENT), ("david@x.org", SENT), ("nomatch@x.org", SKIPPED)]
    assert sorted(m.recipient for m in transport.messages) == ["amina@x.org", "david@x.org"]
    after = _counts(client.get(f"{BASE}/recipients").text)
    assert after["will-get"] == 0 and after["already"] == 3
    world.subscriber("late@x.org", topics=["mental-health"])  # joined since: a resend would reach them
    session.commit()
    assert _counts(client.get(f"{BASE}/recipients").text)["will-get"] == 1
    session.execute(Edition.__table__.update().values(status="cancelled"))
    session.commit()
    r = client.get(f"{BASE}/recipients")
    assert r.status_code == 409 and "it cannot start sending" in r.text


def test_a_send_is_watched_paused_resumed_and_unknown_ones_resent_each_audited(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
    queue,
):
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan
    from mailer.digest.editions import build_edition

    ed = build_edition(session, PERIOD)  # the monthly job's draft: no second person needed
    fanout.start_edition(session, ed, load_plan(session, ed))  # sending, nothing queued yet
    session.commit()
    client = as_user(app, staff["editor"], clock)
    page = client.get(f"{BASE}/sending")
    assert page.status_code == 200 and 'data-field="status">sending<' in page.text
    assert '<script src="/static/console-sending.js" defer></script>' in page.text
    assert 'data-poll-first="100" data-poll-every="200" data-poll-retry="1000"' in page.text  # 0.1 of 1, 2, 10 s
    data = client.get(f"{BASE}/progress.json").get_json()
    assert (data["status"], data["total"], data["pending"], data["sent"], data["finished"]) == (
        "sending",
        3,
        2,
        0,
        False,
    )
    r = post(client, f"{BASE}/pause", {"reason": "relay maintenance"}, page=f"{BASE}/sending")
    assert r.status_code == 302 and edition(session).status == "paused"
    page = client.get(r.headers["Location"]).text
    assert "Paused" in page and "relay maintenance" in page and "Resume" in page
    r = post(client, f"{BASE}/resume", page=f"{BASE}/sending")
    assert r.status_code == 302
    queue()
    data = client.get(f"{BASE}/progress.json").get_json()
    assert (data["status"], data["sent"], data["pending"], data["finished"]) == ("sent", 2, 0, True)

    # one delivery's fate became unknown (a worker died): the person chooses to resend it
    session.execute(
        Delivery.__table__.update().where(Delivery.status == SENT).values(status=UNKNOWN).execution_options()
    )
    session.commit()
    assert "Resend the unknown ones" in client.get(f"{BASE}/sending").text
    post(client, f"{BASE}/resend-unknown", page=f"{BASE}/sending")
    queue()
    assert client.get(f"{BASE}/progress.json").get_json()["sent"] == 2
    assert actions(session, ed.id) == ["edition.pause", "edition.resume", "edition.resend_unknown"]
    assert audit.search(session, action="edition.pause").entries[0].after["reason"] == "relay maintenance"
    # a sent edition can be neither paused nor cancelled
    assert post(client, f"{BASE}/pause", page=f"{BASE}/sending").status_code == 409
    assert post(client, f"{BASE}/cancel", page=f"{BASE}/sending").status_code == 409


def test_a_send_the_breaker_paused_says_so_with_the_failures_and_the_way_on(app, world, staff, clock, session):  # noqa: F811
    from mailer.delivery import fanout
    from mailer.delivery.sending import pause_edition
    from mailer.digest.compose import load_plan
    from mailer.digest.editions import build_edition

    ed = build_edition(session, PERIOD)
    fanout.start_edition(session, ed, load_plan(session, ed))
    amina = session.scalar(select(Subscriber.id).where(Subscriber.email == "amina@x.org"))
    session.execute(
        Delivery.__table__.update()
        .where(Delivery.subscriber_id == amina)
        .values(status="failed", attempts=5, error="gave up after 5 attempts: 451 4.3.0 relay busy")
    )
    pause_edition(session, ed.id, "5 consecutive failures; last: 451 4.3.0 relay busy", "breaker")
    session.commit()
    client = as_user(app, staff["editor"], clock)
    page = client.get(f"{BASE}/sending").text
    assert "The circuit breaker paused this send" in page and "5 consecutive failures" in page
    assert "amina@x.org" in page and "451 4.3.0 relay busy" in page
    assert 'data-field="failed">1<' in page and ">Resume<" in page and ">Pause<" not in page
    data = client.get(f"{BASE}/progress.json").get_json()
    assert data["events"][-1]["kind"] == "breaker" and data["status"] == "paused" and not data["finished"]


def test_the_send_page_says_while_readers_are_added_or_the_relay_refuses_or_a_silent_worker_holds_some(
    app,
    world,
    staff,  # noqa: F811
    clock,  # noqa: F811
    session,
):
    from datetime import timedelta

    from mailer import runtime
    from mailer.db import utcnow
    from mailer.delivery import fanout
    from mailer.delivery.sending import claim
    from mailer.digest.compose import load_plan
    from mailer.digest.editions import build_edition

    ed = build_edition(session, PERIOD)
    fanout.start_edition(session, ed, load_plan(session, ed), first=1)  # the send job's first range
    session.commit()
    client = as_user(app, staff["editor"], clock)
    assert (
        "Still adding readers: the ledger holds the first 1 so far."
        in client.get(f"{BASE}/progress.json").get_json()["trouble"]
    )
    while fanout.extend(session, ed.id, load_plan(session, ed)):
        pass
    session.commit()
    assert 'data-field="trouble" hidden></p>' in client.get(f"{BASE}/sending").text  # all is well
    ids = fanout.pending_ids(session, ed.id)
    # One reader's copy waits out a retry: the relay refused the connection.
    session.execute(
        Delivery.__table__.update()
        .where(Delivery.id == ids[0])
        .values(attempts=1, next_attempt_at=utcnow() + timedelta(minutes=5), error="not attempted: <421 busy>")
    )
    # The other is in the claim of a worker whose last beat was two thirds of a lease ago.
    lease = runtime.current().settings.delivery.lease_seconds
    claim(session, ids[1:], token=7)
    beat = utcnow() - timedelta(seconds=lease * 2 / 3)
    session.execute(Delivery.__table__.update().where(Delivery.claim == 7).values(heartbeat_at=beat))
    session.commit()
    page = client.get(f"{BASE}/sending").text
    assert "The relay has been refusing since " in page and "1 waiting to retry." in page
    assert "Its last answer: &lt;421 busy&gt;" in page  # the relay's words are data
    assert f"1 held by a worker silent since {beat:%H:%M:%S} UTC (stopped or dead)" in page
    trouble = client.get(f"{BASE}/progress.json").get_json()["trouble"]
    assert "Its last answer: <421 busy>" in trouble
    assert f"a sweep takes them back from {beat + timedelta(seconds=lease):%H:%M:%S} UTC." in trouble


def test_cancelling_stops_unsent_deliveries_and_is_audited(app, world, staff, clock, session):  # noqa: F811
    from mailer.delivery import fanout
    from mailer.digest.compose import load_plan
    from mailer.digest.editions import build_edition

    ed = build_edition(session, PERIOD)
    fanout.start_edition(session, ed, load_plan(session, ed))
    session.commit()
    client = as_user(app, staff["admin"], clock)
    r = post(client, f"{BASE}/cancel", page=f"{BASE}/sending")
    assert r.status_code == 302 and edition(session).status == "cancelled"
    assert set(session.scalars(select(Delivery.status))) == {"cancelled", SKIPPED}
    entry = audit.search(session, action="edition.cancel").entries[0]
    assert (entry.actor, entry.before, entry.after) == (
        "admin",
        {"status": "sending"},
        {"status": "cancelled", "not_sent": 2},
    )


@pytest.mark.dialects("sqlite", "postgresql")
def test_the_ledger_finds_a_reader_and_says_why_not_page_by_page(app, staff, clock, session, queue):  # noqa: F811
    from mailer.actors.digest import start_edition
    from mailer.digest.editions import build_edition

    w = standard_world(session)
    for i in range(60):
        w.subscriber(f"reader{i:02d}@x.org", topics=["sexual-health"], name=f"Reader {i}")
    w.subscriber("elsewhere@x.org", topics=[], name="Zed")
    ed = build_edition(session, PERIOD)
    session.commit()
    from mailer import runtime

    runtime.current().queue.send(start_edition, ed.id)
    queue()
    client = as_user(app, staff["editor"], clock)
    first = client.get(f"{BASE}/ledger")
    assert "61 readers; page 1 of 2." in first.text and first.text.count('<th scope="row">') == 50
    second = client.get(f"{BASE}/ledger?page=2").text
    assert "reader59@x.org" in second and "reader00@x.org" not in second
    one = client.get(f"{BASE}/ledger?q=READER07").text
    assert "1 reader;" in one and "reader07@x.org" in one and ">sent<" in one
    skipped = client.get(f"{BASE}/ledger?status=skipped").text
    assert "elsewhere@x.org" in skipped and "nothing in this edition matched their choices" in skipped
    assert "0 readers" in client.get(f"{BASE}/ledger?q=%25").text  # % is text, not a wildcard


# --- the whole journey in a browser -----------------------------------------------------


@pytest.mark.browser
def test_build_preview_test_send_approve_send_watch_and_look_up_a_reader_in_chromium(
    live_server,
    browser,
    world,
    staff,  # noqa: F811
    editor2,
    transport,
    session,
):
    """Two editors, each logging in with a password and a TOTP code: one builds, edits,
    previews and test-sends the edition; the other approves it; the first sends it, watches
    it finish (the page updates itself), and finds a reader in the ledger."""
    from playwright.sync_api import expect

    problems: list[str] = []

    def open_as(user):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(20_000)
        # a script, style or frame the policy blocks shows up as a console error; one that
        # failed to load as a response of its own (a form's own 400 is the page, not a problem)
        page.on(
            "console",
            lambda m: (
                m.type == "error" and not m.text.startswith("Failed to load resource") and problems.append(m.text)
            ),
        )
        page.on(
            "response",
            lambda r: (
                r.status >= 400
                and (r.request.resource_type != "document" or r.frame.parent_frame is not None)
                and not r.url.endswith("/favicon.ico")
                and problems.append(f"{r.status} {r.url}")
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{live_server}/admin/login")
        page.get_by_label("User name").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Continue").click()
        page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(user.secret).now())
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        return context, page

    first_ctx, page = open_as(staff["editor"])
    try:
        page.get_by_role("link", name="Editions").click()
        page.get_by_role("button", name="Build").click()  # no month given: the error is tied to its field
        expect(page.get_by_role("alert")).to_contain_text("Enter the month")
        page.get_by_label("Month (YYYY-MM)").fill(PERIOD)
        page.get_by_role("button", name="Build").click()
        expect(page.get_by_role("heading", name=f"Edition {PERIOD}: draft")).to_be_visible()
        page.get_by_label("Subject", exact=True).fill("December from the campaign")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("status")).to_contain_text("Someone else must now approve")

        page.get_by_role("link", name="Preview and test-send").click()
        page.get_by_label("As the subscriber with this address").fill("amina@x.org")
        page.get_by_role("button", name="Show their copy").click()
        for frame in ("iframe.desktop", "iframe.mobile"):
            expect(page.frame_locator(frame).get_by_text("PrEP clinic evenings").first).to_be_visible()
        # the mobile frame really is 320 px wide
        assert page.locator("iframe.mobile").bounding_box()["width"] <= 322
        page.get_by_label("Send this copy as a test to").fill("checker@example.org")
        page.get_by_role("button", name="Send test").click()
        expect(page.get_by_role("status")).to_contain_text("Sent a test to checker@example.org")
        assert [m.recipient for m in transport.messages] == ["checker@example.org"]

        page.get_by_role("link", name=f"Edition {PERIOD}").click()
        expect(page.locator("#approval-state")).to_contain_text("someone other than editor must approve")

        second_ctx, other = open_as(editor2)
        try:
            other.goto(f"{live_server}/admin/editions/{PERIOD}")
            other.get_by_role("button", name="Approve this edition").click()
            expect(other.get_by_role("status")).to_contain_text("Approved")
        finally:
            second_ctx.close()

        page.reload()
        expect(page.locator("#approval-state")).to_contain_text("Approved by editor2")
        page.get_by_role("link", name="Recipients", exact=True).click()
        expect(page.locator("#count-will-get")).to_have_text("2")
        page.get_by_role("link", name=f"Edition {PERIOD}").click()
        page.get_by_role("button", name="Send now").click()
        expect(page.get_by_role("heading", name=f"Sending the {PERIOD} edition")).to_be_visible()
        # no reload by hand: the page's script follows the send until it is done
        expect(page.locator('[data-field="status"]')).to_have_text("sent")
        expect(page.locator('[data-field="sent"]')).to_have_text("2")

        page.get_by_role("link", name="Ledger", exact=True).click()
        page.get_by_label("Address or name").fill("Amina")
        page.get_by_role("button", name="Search").click()
        row = page.get_by_role("row", name=re.compile("amina@x.org"))
        expect(row).to_contain_text("sent")
        expect(page.get_by_text("1 reader;")).to_be_visible()
    finally:
        first_ctx.close()
    assert sorted(m.recipient for m in transport.messages) == ["amina@x.org", "checker@example.org", "david@x.org"]
    assert problems == []


@pytest.mark.browser
def test_every_editions_page_passes_axe(live_server, browser, world, staff, session, queue):  # noqa: F811
    """axe-core finds no serious or critical violation on any editions page, in each state
    that shows different parts: a draft with its forms and errors, the preview with its
    frames, the recipients, a finished send and its ledger."""
    # tests/axe.py (axe-core vendored, with assert_accessible) comes with the console's
    # accessibility infrastructure; until this branch has it, there is nothing to run.
    axe = pytest.importorskip("tests.axe")
    from mailer.actors.digest import start_edition
    from mailer.digest.editions import build_edition

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    user = staff["admin"]
    try:
        page.goto(f"{live_server}/admin/login")
        page.get_by_label("User name").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Continue").click()
        page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(user.secret).now())
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server}/admin/")

        page.goto(f"{live_server}/admin/editions")
        page.get_by_role("button", name="Build").click()  # no month: an error tied to its field
        axe.assert_accessible(page)
        page.get_by_label("Month (YYYY-MM)").fill(PERIOD)
        page.get_by_role("button", name="Build").click()
        page.get_by_label("Subject", exact=True).fill("")
        page.get_by_role("button", name="Save changes").click()  # an error on the edition page
        axe.assert_accessible(page)
        for path in ("preview?subscriber=amina@x.org", "recipients", "recipients?reason=paused", "sending"):
            page.goto(f"{live_server}{BASE}/{path}")
            axe.assert_accessible(page)

        runtime_edition = build_edition(session, PERIOD)
        session.commit()
        from mailer import runtime

        runtime.current().queue.send(start_edition, runtime_edition.id)
        queue()
        for path in ("", "/sending", "/ledger", "/ledger?q=amina"):
            page.goto(f"{live_server}{BASE}{path}")
            axe.assert_accessible(page)
        page.goto(f"{live_server}/admin/editions")
        axe.assert_accessible(page)
    finally:
        context.close()
