"""The outbox viewer: the emails embedded mode wrote, listed and shown (HTML in a
sandboxed frame, text, headers); only outbox files, only for roles that may see them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailer.delivery.transactional import compose_transactional
from mailer.mail.transport import FileOutbox
from mailer.staff.permissions import ROLE_PERMISSIONS, ROLES, SUBSCRIBERS_MANAGE
from subscribers.models import Subscriber
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures)


@pytest.fixture
def outbox(settings, session, demo):
    """Three real emails (manage links to demo subscribers) in the file outbox."""
    box = FileOutbox(settings.outbox_dir)
    subs = session.scalars(select(Subscriber).order_by(Subscriber.id).limit(3)).all()
    for sub in subs:
        env = compose_transactional("manage", settings, sub)
        box.send("bounces@ertg.example.org", env.recipient, env.data)
    return subs


def names(settings):
    return sorted(p.name for p in settings.outbox_dir.iterdir() if p.suffix == ".eml")


def editor_client(app, staff, clock, role="editor"):  # noqa: F811
    client = app.test_client()
    log_in(client, staff[role], clock)
    return client


def test_the_outbox_lists_every_email_and_shows_one_as_html_text_and_headers(app, staff, clock, outbox, settings):  # noqa: F811
    client = editor_client(app, staff, clock)
    page = client.get("/admin/outbox")
    assert page.status_code == 200 and "3 emails in the outbox" in page.text
    assert page.text.count("Your subscription to the campaign digest") == 3
    for sub in outbox:
        assert sub.email in page.text
    name = names(settings)[0]
    one = client.get(f"/admin/outbox/{name}")
    assert one.status_code == 200
    assert re.search(
        rf'<iframe class="email-frame" sandbox="" title="[^"]+" src="/admin/outbox/{name}/html">', one.text
    )
    assert "Plain text" in one.text and "/manage/" in one.text  # the text part, links and all
    assert '<th scope="row">Return-Path</th><td>&lt;bounces@ertg.example.org&gt;</td>' in one.text  # headers
    frame = client.get(f"/admin/outbox/{name}/html")
    assert frame.status_code == 200 and frame.mimetype == "text/html" and "<html" in frame.text.lower()
    csp = frame.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "frame-ancestors 'self'" in csp and "script-src" not in csp
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN" and frame.headers["Cache-Control"] == "no-store"
    # the page that frames it allows frames from the console only, and nothing inline
    assert "frame-src 'self'" in one.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in one.headers["Content-Security-Policy"]


def test_the_outbox_pages_newest_first(app, staff, clock, settings):  # noqa: F811
    box = FileOutbox(settings.outbox_dir)
    for i in range(55):
        box.send(
            "b@example.org", f"r{i}@example.org", f"Subject: Message {i}\r\nTo: r{i}@example.org\r\n\r\nHi\r\n".encode()
        )
    client = editor_client(app, staff, clock)
    first, second = client.get("/admin/outbox").text, client.get("/admin/outbox?page=2").text
    assert "55 emails" in first and "Page 1 of 2." in first and first.count('scope="row"') == 50
    assert second.count('scope="row"') == 5 and 'rel="prev"' in second


def test_only_outbox_files_can_be_read(app, staff, clock, outbox, settings, tmp_path):  # noqa: F811
    (settings.outbox_dir.parent / "secret_key").write_text("do not show")
    client = editor_client(app, staff, clock)
    for bad in ("..%2Fsecret_key", "secret_key", "0" * 32 + ".eml", ".." + names(settings)[0], "%2e%2e"):
        assert client.get(f"/admin/outbox/{bad}").status_code == 404, bad
        assert client.get(f"/admin/outbox/{bad}/html").status_code == 404, bad


def test_hostile_headers_and_bodies_are_shown_as_text(app, staff, clock, settings):  # noqa: F811
    FileOutbox(settings.outbox_dir).send(
        "b@example.org",
        "r@example.org",
        b"Subject: <script>alert(1)</script>\r\nTo: r@example.org\r\nContent-Type: text/plain\r\n\r\n<img src=x onerror=alert(2)>\r\n",
    )
    client = editor_client(app, staff, clock)
    listing = client.get("/admin/outbox").text
    shown = client.get(f"/admin/outbox/{names(settings)[0]}").text
    for page in (listing, shown):
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in shown and "<iframe" not in shown  # no HTML part


@pytest.mark.parametrize("role", ROLES)
def test_the_outbox_is_for_roles_that_manage_subscribers(app, staff, clock, outbox, settings, role):  # noqa: F811
    client = editor_client(app, staff, clock, role)
    allowed = SUBSCRIBERS_MANAGE in ROLE_PERMISSIONS[role]
    name = names(settings)[0]
    for path in ("/admin/outbox", f"/admin/outbox/{name}", f"/admin/outbox/{name}/html"):
        assert client.get(path).status_code == (200 if allowed else 403), (role, path)
    anon = app.test_client().get(f"/admin/outbox/{name}/html")
    assert anon.status_code == 302 and anon.headers["Location"].startswith("/admin/login")


def test_with_a_relay_the_page_says_there_is_no_outbox(rt, settings, transport, staff, clock):  # noqa: F811
    import dataclasses

    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, smtp_url="smtp://127.0.0.1:2525"), transport)
    client = app.test_client()
    log_in(client, staff["editor"], clock)
    assert "there is no outbox to show" in client.get("/admin/outbox").text
