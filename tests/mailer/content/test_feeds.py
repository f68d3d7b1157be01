"""Feed ingestion against a real HTTP server on loopback (the private-address allowance on)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from mailer.content.feeds import poll_feeds
from mailer.content.fetch import FetchOptions
from mailer.content.models import Item, Partner
from tests.factories import make_partner

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Naz news</title><link>https://www.naz.org.uk/</link>
<item><title>PrEP evenings &amp; advice</title><link>https://www.naz.org.uk/prep</link>
<guid>naz-1</guid><category>Sexual health</category>
<description>&lt;p&gt;Evening sessions &lt;script&gt;alert(1)&lt;/script&gt;with advocates.&lt;/p&gt;</description></item>
<item><title>Second post</title><link>https://www.naz.org.uk/second</link><guid>naz-2</guid>
<description>No category here.</description></item>
<item><title>Sneaky</title><link>javascript:alert(1)</link><guid>naz-3</guid><description>x</description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>BHF</title><id>urn:bhf</id>
<updated>2026-11-01T00:00:00Z</updated>
<entry><title>Heart screening for Asian patients</title><id>urn:bhf:1</id>
<link href="https://www.bhf.org.uk/screening"/><updated>2026-11-01T00:00:00Z</updated>
<category term="heart-health"/><category term="case study"/>
<summary>More patients came forward.</summary>
<content type="html">&lt;p onclick="x()"&gt;Full &lt;b&gt;story&lt;/b&gt;&lt;iframe src="https://evil"&gt;&lt;/iframe&gt;&lt;/p&gt;</content></entry>
</feed>"""

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title><item><title>&lol3;</title><guid>b</guid>
<link>https://example.org/b</link></item></channel></rss>"""

LATIN1 = (
    '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>x</title>'
    "<item><title>Caf\xe9 meeting for carers</title><guid>l1</guid><link>https://example.org/cafe</link>"
    "<description>Se\xf1ora Garc\xeda speaks.</description></item></channel></rss>"
).encode("latin-1")


ESCAPES = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>x</title>
<item><title>Screening \x1b]0;owned\x07day\x1b[2J</title><guid>e1</guid>
<link>https://example.org/screening</link>
<description>Come \x1b[1;31malong\x1b[0m.</description>
<content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/">&lt;p&gt;Body \x1b]8;;https://evil.example/\x1b\\here\x1b]8;;\x1b\\&lt;/p&gt;</content:encoded>
</item></channel></rss>"""


class Feeds(BaseHTTPRequestHandler):
    changing = [RSS]
    release = threading.Event()  # set when the module's tests end: lets /hang and /trickle stop
    hits: list[tuple[str, str | None]] = []

    def log_message(self, *args):
        pass

    def _send(self, body: bytes, ctype="application/rss+xml", extra=()):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Feeds.hits.append((self.path, self.headers.get("If-None-Match")))
        p = self.path
        if p == "/rss":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.end_headers()
                return
            self._send(RSS.encode(), extra=[("ETag", '"v1"')])
        elif p == "/changing":
            body = Feeds.changing[0].encode()
            self._send(body, extra=[("ETag", f'"{hash(body)}"')])
        elif p == "/atom":
            stamp = "Sun, 01 Nov 2026 00:00:00 GMT"
            if self.headers.get("If-Modified-Since") == stamp:
                self.send_response(304)
                self.end_headers()
                return
            self._send(ATOM.encode(), "application/atom+xml", extra=[("Last-Modified", stamp)])
        elif p == "/broken":
            self._send(b"<html><body>Our site is down <rss", "text/html")
        elif p == "/bomb":
            self._send(BOMB.encode())
        elif p == "/latin1":
            self._send(LATIN1, "application/rss+xml; charset=iso-8859-1")
        elif p == "/badbytes":
            self._send(RSS.replace("Second post", "Second \udcff post").encode("utf-8", "surrogateescape"))
        elif p == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()  # no Content-Length: the cap must stop the read
            try:
                self.wfile.write(b"<rss version='2.0'><channel>")
                for _ in range(200):
                    self.wfile.write(b"<item><title>" + b"x" * 10_000 + b"</title></item>")
            except OSError:
                pass
        elif p == "/hang":
            Feeds.release.wait(30)  # never answers while a test may be waiting for it
        elif p == "/trickle":
            self.send_response(200)
            self.end_headers()
            try:
                while not Feeds.release.wait(0.02):  # a byte at a time, never the end
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except OSError:
                pass
        elif p == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif p == "/escapes":
            self._send(ESCAPES.encode())
        elif p == "/escaped-reason":
            self.send_response(503, "Service \x1b]0;owned\x07Unavailable\x1b[2J")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif p == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://metadata.example.org/latest/meta-data/")
            self.end_headers()
        elif p == "/moved":
            self.send_response(301)
            self.send_header("Location", "/atom")
            self.end_headers()
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Feeds)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    Feeds.release.set()
    httpd.shutdown()


OPTS = FetchOptions(timeout=1.0, max_bytes=200_000, allow_private=True)


def _poll(rt, slug=None, options=OPTS):
    return {r.partner: r for r in poll_feeds(rt.db, options, today=date.today(), slug=slug)}


def _items(session, slug):
    session.expire_all()
    return list(session.scalars(select(Item).join(Partner).where(Partner.slug == slug).order_by(Item.id)))


def _partner(session, slug):
    session.expire_all()
    return session.scalar(select(Partner).where(Partner.slug == slug))


def test_rss_entries_become_items_and_a_repoll_adds_nothing(rt, session, server):
    make_partner(rt, "naz", feed_url=f"{server}/rss")
    result = _poll(rt)["naz"]
    assert len(result.new_item_ids) == 2 and len(result.skipped) == 1
    first, second = _items(session, "naz")
    assert first.title == "PrEP evenings & advice" and first.source == "feed"
    assert [t.slug for t in first.topics] == ["sexual-health"]  # category mapped by name
    assert "<script" not in first.summary and "alert" not in first.summary
    assert first.status == second.status == "submitted"
    assert second.topics == []  # no category: left for the editor
    p = _partner(session, "naz")
    assert p.feed_etag == '"v1"' and "Sneaky" in p.feed_error and "link" in p.feed_error
    Feeds.hits.clear()
    assert _poll(rt)["naz"].not_modified
    assert Feeds.hits == [("/rss", '"v1"')]  # conditional GET
    assert len(_items(session, "naz")) == 2


def test_atom_feed_of_trusted_partner_is_approved_and_body_cleaned(rt, session, server):
    make_partner(rt, "bhf", trusted=True, feed_url=f"{server}/moved")  # one redirect is fine
    assert len(_poll(rt, "bhf")["bhf"].new_item_ids) == 1
    (item,) = _items(session, "bhf")
    assert (item.status, item.kind, item.link) == ("approved", "case_study", "https://www.bhf.org.uk/screening")
    assert [t.slug for t in item.topics] == ["heart-health"]
    assert "onclick" in item.body_markdown  # the partner's original, kept
    assert item.body_html == "<p>Full <b>story</b></p>"
    assert _partner(session, "bhf").feed_error is None
    assert _poll(rt, "bhf")["bhf"].not_modified  # If-Modified-Since with the stored Last-Modified


def test_feed_that_changes_between_polls_adds_only_new_entries(rt, session, server):
    make_partner(rt, "naz", feed_url=f"{server}/changing")
    Feeds.changing[0] = RSS
    _poll(rt)
    assert len(_items(session, "naz")) == 2
    Feeds.changing[0] = RSS.replace(
        "<item><title>Second",
        "<item><title>Brand new</title>"
        "<link>https://www.naz.org.uk/new</link><guid>naz-4</guid>"
        "<description>n</description></item><item><title>Second",
    )
    assert len(_poll(rt)["naz"].new_item_ids) == 1
    assert [i.title for i in _items(session, "naz")][-1] == "Brand new"


def test_broken_feeds_record_their_error_and_never_stop_the_others(rt, session, server):
    bad = {
        "broken": "/broken",
        "bomb": "/bomb",
        "huge": "/huge",
        "hang": "/hang",
        "trickle": "/trickle",
        "loop": "/loop",
        "gone": "/nothing-here",
    }
    for slug, path in bad.items():
        make_partner(rt, slug, feed_url=server + path)
    make_partner(rt, "zz-good", feed_url=f"{server}/atom")
    started = time.monotonic()
    results = _poll(rt, options=replace(OPTS, timeout=0.3))
    assert time.monotonic() - started < 5  # the hanging feeds each cost at most the 0.3 s budget
    assert len(results["zz-good"].new_item_ids) == 1
    expected = {
        "broken": "not",
        "bomb": "entities",
        "huge": "too large",
        "hang": "timed out",
        "trickle": "timed out",
        "loop": "redirects",
        "gone": "HTTP 404",
    }
    for slug, words in expected.items():
        assert results[slug].error and words in results[slug].error, (slug, results[slug].error)
        assert words in _partner(session, slug).feed_error
        assert _items(session, slug) == []


def test_non_utf8_feeds_are_decoded_or_neutralised(rt, session, server):
    make_partner(rt, "latin", feed_url=f"{server}/latin1")
    make_partner(rt, "mangled", feed_url=f"{server}/badbytes")
    _poll(rt)
    (item,) = _items(session, "latin")
    assert item.title == "Café meeting for carers" and "Señora García" in item.summary
    for item in _items(session, "mangled"):  # whatever came through is clean text
        assert "\udcff" not in item.title


def test_private_addresses_are_refused_unless_allowed(rt, session, server):
    make_partner(rt, "naz", feed_url=f"{server}/rss")
    make_partner(rt, "meta", feed_url="http://169.254.169.254/latest/meta-data/")
    results = _poll(rt, options=replace(OPTS, allow_private=False))
    assert "private or local address" in results["naz"].error
    assert "private or local address" in results["meta"].error
    assert _items(session, "naz") == []


def test_cli_polls_one_partner(rt, session, server, app):
    from mailer.cli import main

    make_partner(rt, "naz", feed_url=f"{server}/rss")
    from mailer import runtime

    current = runtime.current()  # the app fixture's runtime, which the command uses
    current.settings = replace(current.settings, feed_allow_private=True, feed_timeout=1.0)
    out = app.test_cli_runner().invoke(main, ["feeds", "poll", "naz"])
    assert out.exit_code == 0, out.output
    assert "naz" in out.output and "2 new, 1 skipped" in out.output
    assert app.test_cli_runner().invoke(main, ["feeds", "poll", "nobody"]).exit_code == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/feed",
        "http://[::1]/feed",
        "http://0.0.0.0/feed",
        "http://2130706433/feed",
        "http://10.1.2.3/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "ftp://example.org/feed",
        "file:///etc/passwd",
        "http://user:pw@example.org/feed",
    ],
)
def test_fetch_refuses_local_addresses_and_other_schemes(url):
    from mailer.content.fetch import FetchError, fetch

    with pytest.raises(FetchError) as err:
        fetch(url, replace(OPTS, allow_private=False))
    assert any(w in str(err.value) for w in ("private or local", "only http", "user name")), str(err.value)


# --- addresses that are not global (DNS and the internet mocked: the outside boundary) ---


class FakeInternet:
    """Names resolve to the addresses given; a connection to a "public" address reaches the
    loopback test server instead, as if it were that host on the internet."""

    def __init__(self, monkeypatch, server: str, names: dict[str, str], public: set[str]):
        import socket

        real_resolve, real_connect = socket.getaddrinfo, socket.create_connection
        port = int(server.rsplit(":", 1)[1])

        def getaddrinfo(host, p, *args, **kwargs):
            if host in names:
                family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
                return [(family, socket.SOCK_STREAM, 6, "", (names[host], p))]
            return real_resolve(host, p, *args, **kwargs)

        def create_connection(address, *args, **kwargs):
            if address[0] in public:
                return real_connect(("127.0.0.1", port), *args, **kwargs)
            raise AssertionError(f"the fetcher connected to {address[0]}")

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.mark.parametrize(
    "address",
    [
        "100.64.0.1",
        "100.100.100.200",  # shared address space (a cloud's metadata service)
        "198.18.0.1",
        "192.0.0.1",
        "240.0.0.1",  # benchmarking, IETF protocol, reserved
        "::ffff:100.64.0.1",  # IPv4-mapped shared space
        "2002:a9fe:a9fe::1",
        "2002:6440:1::1",  # 6to4 around 169.254.169.254 and 100.64.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "64:ff9b::a9fe:a9fe",  # NAT64 to the link-local metadata address
        "::a9fe:a9fe",  # IPv4-compatible (deprecated)
    ],
)
def test_fetch_refuses_every_address_that_is_not_global(monkeypatch, server, address):
    from mailer.content.fetch import FetchError, fetch

    FakeInternet(monkeypatch, server, {"feeds.example.org": address}, public=set())
    with pytest.raises(FetchError, match="not a public one"):
        fetch("http://feeds.example.org/rss", replace(OPTS, allow_private=False))
    if ":" in address:  # the same address typed as a literal
        with pytest.raises(FetchError, match="not a public one"):
            fetch(f"http://[{address}]/rss", replace(OPTS, allow_private=False))


def test_every_redirect_hop_must_be_global(monkeypatch, server, rt, session):
    """A public feed that redirects to a name in shared address space is refused at that hop,
    and the refusal is what the partner's feed error says."""
    from mailer.content.fetch import fetch

    FakeInternet(
        monkeypatch,
        server,
        {"feeds.example.org": "93.184.216.34", "metadata.example.org": "100.100.100.200"},
        public={"93.184.216.34"},
    )
    options = replace(OPTS, allow_private=False)
    assert fetch("http://feeds.example.org/rss", options).status == 200  # public: fetched
    make_partner(rt, "naz", feed_url="http://feeds.example.org/to-metadata")
    result = _poll(rt, options=options)["naz"]
    assert result.error and "100.100.100.200" in result.error and "not a public one" in result.error
    assert _items(session, "naz") == []


def test_terminal_escapes_from_feeds_are_stripped_before_they_are_stored(rt, session, server):
    """Entry text, the partner's raw body and the feed error quoting a server's reason phrase
    are stored without escape sequences or control characters."""
    make_partner(rt, "esc", feed_url=f"{server}/escapes")
    make_partner(rt, "reason", feed_url=f"{server}/escaped-reason")
    results = _poll(rt)
    assert results["esc"].new_item_ids and not results["esc"].error
    [item] = _items(session, "esc")
    stored = [item.title, item.summary, item.body_markdown, item.body_html]
    assert not any(ch in text for text in stored for ch in "\x1b\x07")
    assert item.title == "Screening day" and item.summary == "Come along."
    assert "Body here" in item.body_markdown and "Body here" in item.body_html
    error = _partner(session, "reason").feed_error
    assert error == "HTTP 503 Service Unavailable"
