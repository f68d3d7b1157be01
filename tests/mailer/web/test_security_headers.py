"""The public pages' Content-Security-Policy: our origin only, no 'unsafe-inline' for
script or style, and pages that honour it (their styles come from static/public.css)."""

from __future__ import annotations

import re

from mailer.digest.editions import build_edition
from mailer.web.security_headers import PUBLIC_CSP
from subscribers.models import Subscriber
from subscribers.tokens import Tokens
from tests.factories import PERIOD, standard_world
from tests.mailer.web.test_digest import _preview_link

INLINE = re.compile(r"<style|\sstyle=|\son[a-z]+=|<script(?![^>]*\bsrc=)", re.I)


def _public_pages(app, session, settings):
    w = standard_world(session)
    sub = w.subscriber("amina@x.org", topics=["sexual-health"], name="Amina Rahman")
    build_edition(session, PERIOD)
    session.commit()
    tokens = Tokens(settings.secret_key, settings.secret_key_fallbacks)
    client = app.test_client()
    preview = _preview_link(app)
    sub = session.get(Subscriber, sub.id)
    paths = [
        "/subscribe",
        "/subscribe/check-email",
        "/manage",
        f"/manage/{tokens.make('manage', sub.id, sub.token_version)}",
        f"/manage/{tokens.make('manage', sub.id, sub.token_version)}/erase",
        f"/u/{tokens.make('unsubscribe', sub.id, sub.token_version)}",
        f"/confirm/{tokens.make('confirm', sub.id, sub.token_version)}",
        "/confirm/forged",
        "/archive",
        f"{preview}?topic={w.topics['sexual-health'].id}",
        "/nothing-here",
    ]
    return {p: client.get(p) for p in paths}


def test_public_pages_have_a_strict_policy_and_no_inline_style_or_script(app, session, settings):
    pages = _public_pages(app, session, settings)
    for path, r in pages.items():
        csp = r.headers["Content-Security-Policy"]
        assert csp.startswith(PUBLIC_CSP), path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert "frame-ancestors 'none'" in csp and "style-src 'self'" in csp and "script-src 'self'" in csp
        assert not INLINE.search(r.text), (path, INLINE.search(r.text))
        assert 'href="/static/public.css"' in r.text, path
    assert pages["/nothing-here"].status_code == 404
    css = app.test_client().get("/static/public.css")
    assert css.status_code == 200 and css.mimetype == "text/css" and ".preview-frames" in css.text


def test_an_email_shown_as_a_page_keeps_its_own_policy(app, session, settings):
    pages = _public_pages(app, session, settings)
    preview = next(p for p in pages if p.startswith("/preview/"))
    frame = re.search(r'src="([^"]+/frame[^"]*)"', pages[preview].text).group(1).replace("&amp;", "&")
    r = app.test_client().get(frame)
    assert r.status_code == 200
    assert "style-src 'unsafe-inline'" in r.headers["Content-Security-Policy"]  # email HTML: inline styles
    assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'none': no script
