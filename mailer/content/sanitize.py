"""Partner Markdown to safe HTML, and the text clean-ups every route in shares.

Markdown is rendered by markdown-it-py (CommonMark, raw HTML allowed through so partners
can paste it) and the result is cleaned by nh3 against an allowlist: no scripts, styles,
event handlers, iframes, forms, or URLs other than http(s) and mailto. The Markdown the
partner typed is stored beside the HTML, so the cleaning can be redone if the rules change.
"""

from __future__ import annotations

import html as _html
import re
import unicodedata

import nh3
from markdown_it import MarkdownIt

from mailer.text import strip_controls

BODY_MAX = 20_000  # characters of Markdown; a digest item is a teaser, not an article

_TAGS = {
    "p",
    "br",
    "strong",
    "b",
    "em",
    "i",
    "ul",
    "ol",
    "li",
    "a",
    "blockquote",
    "code",
    "pre",
    "h3",
    "h4",
    "hr",
}
_ATTRIBUTES = {"a": {"href", "title"}}
_SCHEMES = {"http", "https", "mailto"}

# Bidirectional overrides and isolates reorder text on screen (a link that reads one way and
# goes another); zero-width characters hide words from reviewers. Neither belongs in an item.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")

_md = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})


def strip_invisible(text: str) -> str:
    """``text`` in NFC with direction overrides, zero-width characters, terminal escape
    sequences and control characters (other than tab and newline) removed."""
    return strip_controls(_INVISIBLE.sub("", unicodedata.normalize("NFC", text)))


def clean_html(html: str) -> str:
    """Untrusted HTML reduced to the allowlist. Links get rel=noopener noreferrer nofollow."""
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


def markdown_to_html(markdown: str) -> str:
    """Sanitised HTML for the partner's Markdown (empty for empty input).

    Headings are shifted down to h3/h4 so an item never outranks the digest's own headings.
    """
    if not markdown.strip():
        return ""
    html = _md.render(markdown)
    html = re.sub(r"<(/?)h[12]\b", r"<\1h3", html)
    html = re.sub(r"<(/?)h[56]\b", r"<\1h4", html)
    return clean_html(html)


def html_to_text(html: str) -> str:
    """Plain text from (feed) HTML: every tag dropped, entities decoded, spaces collapsed."""
    text = nh3.clean(html, tags=set(), attributes={}, strip_comments=True)
    return re.sub(r"\s+", " ", _html.unescape(text)).strip()
