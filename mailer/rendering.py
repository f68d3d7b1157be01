"""Email rendering: Jinja2, then MJML, then CSS inlining, and the block/placeholder scheme
that lets one render serve every recipient.

Templates render once with every block present and with placeholders such as
``__PH_MANAGE_URL__`` where personal values go. Blocks are delimited by markers
``<!--BLOCK:kind:n-->``; :func:`split_blocks` cuts the output at those markers so a
recipient's copy is only a choice of blocks plus :func:`fill` of the placeholders.
"""
from __future__ import annotations

import logging
import re
from html import escape
from pathlib import Path
from typing import Mapping

import cssutils
import cssutils.util
import jinja2
from mjml import mjml_to_html
from premailer import Premailer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"

cssutils.log.setLevel(logging.CRITICAL)  # MJML's mso-/-webkit- properties are not errors


def _no_fetch(url):  # pragma: no cover - only reached by an @import in a template
    """cssutils would fetch ``@import`` URLs over the network; an email render never should."""
    return None, ""


cssutils.util._defaultFetcher = _no_fetch

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["mjml", "html"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


_INDENT = re.compile(r"\n[ \t]+")


def compile_mjml(source: str) -> str:
    """MJML markup to HTML. ~10-100 ms: call once per template or edition, not per recipient.

    MJML indents its output generously; leading whitespace on a line never shows in HTML
    (our templates have no ``<pre>``), and dropping it saves ~25% of a digest's bytes,
    which keeps 60-item editions under Gmail's 102 KB clipping limit.
    """
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


_MARKER = re.compile(r"<!--BLOCK:([a-z]+)(?::(\d+))?-->\n?")


def split_blocks(rendered: str) -> list[tuple[str, int, str]]:
    """Cut ``rendered`` at its block markers into ``(kind, number, text)`` triples.

    Text before the first marker is kind ``always``. Markers themselves are dropped.
    """
    out: list[tuple[str, int, str]] = []
    kind, number, pos = "always", 0, 0
    for m in _MARKER.finditer(rendered):
        out.append((kind, number, rendered[pos : m.start()]))
        kind, number, pos = m.group(1), int(m.group(2) or 0), m.end()
    out.append((kind, number, rendered[pos:]))
    return [b for b in out if b[2]]
