"""Email rendering: Jinja2, then MJML, then CSS inlining, and the block/placeholder scheme
that lets one render serve every recipient.

Templates render once with every block present and with placeholders where personal
values go. Transactional emails use the fixed form ``__PH_MANAGE_URL__`` (filled by
:func:`fill`, their values never pass through the templates). The digest, whose render
holds partner text, uses :class:`Markers`: block markers and placeholders carrying a
random per-render nonce, so no partner title, summary, link or feed entry can produce
one, and any value that does contain the nonce has it removed before output (the
``finalize`` hook below). Only what the template wrote is cut and filled.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Mapping
from html import escape
from pathlib import Path

import jinja2
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "email"


def _no_fetch(url):  # pragma: no cover - only reached by an @import in a template
    """cssutils would fetch ``@import`` URLs over the network; an email render never should."""
    return None, ""


@functools.cache
def render_engines():
    """MJML's compiler and the CSS inliner, imported and configured on the first render.

    Imported here rather than at the top because, with cssutils, BeautifulSoup, lxml and
    requests behind them, they were over a third of every process's start-up (about 0.5 s
    of 1.35 s, ``python -X importtime -c "import mailer.worker"``), and many processes never
    render: the CLI's commands, the LMTP receiver, the scheduler, a web process until
    someone previews an email. Workers pay it once, on their first edition or notice.
    """
    # On the first render, not at start-up: see above.
    import cssutils
    import cssutils.util
    from mjml import mjml_to_html
    from premailer import Premailer

    cssutils.log.setLevel(logging.CRITICAL)  # MJML's mso-/-webkit- properties are not errors
    cssutils.util._defaultFetcher = _no_fetch
    return mjml_to_html, Premailer


@jinja2.pass_context
def _data_only(context, value):
    """Every ``{{ expression }}`` passes here: a value that is not one of our markers loses
    the render's nonce, so data can never become a marker (HTML and text templates alike)."""
    markers = context.get("markers")
    if markers is not None and value.__class__ is str:
        return markers.defuse(value)
    return value


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["mjml", "html"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    finalize=_data_only,
)


_INDENT = re.compile(r"\n[ \t]+")


def compile_mjml(source: str) -> str:
    """MJML markup to HTML. ~10-100 ms: call once per template or edition, not per recipient.

    MJML indents its output generously; leading whitespace on a line never shows in HTML
    (our templates have no ``<pre>``), and dropping it saves ~25% of a digest's bytes,
    which keeps 60-item editions under Gmail's 102 KB clipping limit.
    """
    mjml_to_html, _ = render_engines()
    return _INDENT.sub("\n", mjml_to_html(source).html)


_HTML_DIMENSION = re.compile(r"\d+%?")


def _numbers_only(copy_attributes):
    """Premailer copies ``width``/``height`` from inline styles into HTML attributes (for
    old clients), whatever the value: ``height:auto`` became ``height="auto"``, which is not
    valid HTML and which some clients read as zero. This wraps its copying so that only
    pixel and percentage values become attributes; the style keeps the rest."""

    def copy(element, style_content, force=False):
        before = {k: element.attrib.get(k) for k in ("width", "height")}
        copy_attributes(element, style_content, force)
        for key, old in before.items():
            new = element.attrib.get(key)
            if new is not None and new != old and not _HTML_DIMENSION.fullmatch(new):
                if old is None:
                    del element.attrib[key]
                else:
                    element.attrib[key] = old

    return copy


def inline_css(html: str) -> str:
    """Move ``<style>`` rules onto elements, keeping the media queries MJML relies on."""
    _, Premailer = render_engines()
    inliner = Premailer(
        html,
        allow_network=False,
        strip_important=False,
        keep_style_tags=True,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    )
    # Premailer 3.10 has no option for this; its one hook is this method (see above).
    inliner._style_to_basic_html_attributes = _numbers_only(inliner._style_to_basic_html_attributes)
    return inliner.transform(pretty_print=False)


def template_source(template: str, context: Mapping) -> str:
    """``templates/email/<template>`` through Jinja2 only (the MJML source)."""
    return _env.get_template(template).render(**context)


def render_html(template: str, context: Mapping) -> str:
    """``templates/email/<template>`` through Jinja2, MJML and the inliner."""
    return inline_css(compile_mjml(_env.get_template(template).render(**context)))


def render_text(template: str, context: Mapping) -> str:
    return _env.get_template(template).render(**context)


def placeholder(name: str) -> str:
    """The marker a template writes where a personal value goes (``ph('MANAGE_URL')``)."""
    return f"__PH_{name}__"


_env.globals["ph"] = placeholder
_PLACEHOLDER = re.compile(r"__PH_([A-Z_]+?)__")


def fill(text: str, values: Mapping[str, str], *, html: bool) -> str:
    """Replace placeholders in ``text`` with ``values`` (HTML-escaped when ``html``).

    A placeholder without a value raises ``KeyError``: a half-personalised email is a bug.
    """
    if html:
        return _PLACEHOLDER.sub(lambda m: escape(values[m.group(1)]), text)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


class Markers:
    """The block markers and placeholders of one render, named with a fresh random nonce.

    A template writes ``{{ block('item', 3) }}`` and ``{{ ph('MANAGE_URL') }}`` (both
    :class:`~markupsafe.Markup`, so autoescaping leaves them alone); the renderer cuts at
    :attr:`block_re` and fills :attr:`placeholder_re`. The nonce is never shown to anyone
    (markers are cut out before a copy exists), so stored text cannot guess it, and
    :meth:`defuse` removes it from data anyway.
    """

    def __init__(self, nonce: str | None = None):
        self.nonce = nonce or secrets.token_hex(12)
        n = re.escape(self.nonce)
        self.block_re = re.compile(rf"<!--BLOCK{n}:([a-z]+):(\d+)-->\n?")
        self.placeholder_re = re.compile(rf"__PH{n}_([A-Z0-9_]+?)__")

    def block(self, kind: str, number: int = 0) -> Markup:
        return Markup(f"<!--BLOCK{self.nonce}:{kind}:{int(number)}-->")

    def ph(self, name: str) -> Markup:
        return Markup(f"__PH{self.nonce}_{name}__")

    def defuse(self, value: str) -> str:
        """``value`` without the nonce (again and again: removing one must not join two
        halves into a new one)."""
        while self.nonce in value:
            value = value.replace(self.nonce, "")
        return value

    def context(self) -> dict:
        """Template variables: ``block``, ``ph`` (shadowing the fixed-form global) and the
        ``markers`` themselves (which switch on :func:`_data_only`)."""
        return {"markers": self, "block": self.block, "ph": self.ph}

    def split(self, rendered: str) -> list[tuple[str, int, str]]:
        """Cut ``rendered`` at its block markers into ``(kind, number, text)`` triples.

        Text before the first marker is kind ``always``; markers themselves are dropped.
        Raises ``ValueError`` if the nonce survives in the text: a marker the template
        wrote was mangled on the way (by MJML or the inliner), a bug to see at once.
        """
        out: list[tuple[str, int, str]] = []
        kind, number, pos = "always", 0, 0
        for m in self.block_re.finditer(rendered):
            out.append((kind, number, rendered[pos : m.start()]))
            kind, number, pos = m.group(1), int(m.group(2)), m.end()
        out.append((kind, number, rendered[pos:]))
        for _, _, text in out:
            if self.nonce in self.placeholder_re.sub("", text):
                raise ValueError("a block marker or placeholder was mangled in rendering")
        return [b for b in out if b[2]]
