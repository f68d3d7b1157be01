"""The rendered digest: render-once, what the copies contain, size, scripts, headers."""
from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest

import mailer.rendering
from mailer.delivery import sending
from mailer.delivery.message import qp_fragment
from mailer.digest import lifecycle
from mailer.digest.compose import archive_copy, compose, copy_for, prepare_edition
from mailer.digest.editions import build_edition
from subscribers.service import recipients
from subscribers.tokens import Tokens
from tests.digest_world import PERIOD, World, standard_world

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
    from mailer.delivery.actors import start_edition
    from mailer.queue import enqueue

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
    mjml = Counter(mailer.rendering.mjml_to_html)
    inliner = Counter(mailer.rendering.Premailer)
    monkeypatch.setattr(mailer.rendering, "mjml_to_html", mjml)
    monkeypatch.setattr(mailer.rendering, "Premailer", inliner)
    sending._prepared.clear()

    enqueue(start_edition, edition.id)
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
        w.item(f"item{i}", f"p{i % 6}", [f"t{i % 8}", f"t{(i * 3 + 1) % 8}"],
               kind="event" if i % 7 == 0 else "news", day=1 + i % 28,
               title=" ".join(words[(i + j) % 8] for j in range(12)).capitalize()[:100],
               summary=(" ".join(words[(i * j) % 8] for j in range(60)))[:400] + ".")
    w.subscriber("everything@x.org", topics=[f"t{i}" for i in range(8)],
                 partners=[f"p{i}" for i in range(6)], name="Somebody With A Long Name")
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
    assert str(make_header(decode_header(b" ".join(s.strip() for s in subject_lines)[9:].decode()))) \
        == "ڈائجسٹ دسمبر 2026 — نسلی مساوات"
    assert msg["Subject"] == "ڈائجسٹ دسمبر 2026 — نسلی مساوات"


@pytest.mark.parametrize("text", ["", "plain", "x" * 75, "x" * 76, "a=b " * 40, "ç" * 60,
                                  "ends with space ", "line\nbreaks\n", "https://d.example.org/u/" + "A" * 100])
def test_qp_fragments_join_into_valid_quoted_printable(text):
    import binascii

    joined = qp_fragment("Start ") + qp_fragment(text) + qp_fragment(" end")
    assert all(len(line) <= 76 for line in joined.split(b"\r\n"))
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
