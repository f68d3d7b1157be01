"""Rendering an edition once, and choosing each recipient's copy from that render.

:func:`render_digest` runs Jinja2, MJML and the inliner a fixed number of times per edition
(once for HTML, once for text), whatever the number of subscribers or combinations of
choices. :func:`personalise` is the per-recipient step: keep the blocks whose mask meets the
recipient's mask, then fill the placeholders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from mailer.digest.plan import DigestPlan
from mailer.rendering import fill, render_html, render_text, split_blocks
from mailer.settings import Settings

ALWAYS = -1  # a block every recipient gets

# Personal values each digest needs (see templates/email/digest.*).
PERSONAL = ("GREETING", "EMAIL", "WHY", "MANAGE_URL", "UNSUBSCRIBE_URL")


@dataclass(frozen=True)
class RenderedDigest:
    html_blocks: tuple[tuple[int, str], ...]
    text_blocks: tuple[tuple[int, str], ...]


def digest_context(plan: DigestPlan, *, subject: str, intro: str, period_label: str,
                   settings: Settings) -> dict:
    return {
        "subject": subject,
        "intro": intro,
        "period_label": period_label,
        "sections": plan.sections,
        "items": plan.items,
        "sender_name": "End Racism This Generation",
        "postal_address": settings.postal_address,
        "subscribe_url": f"{settings.base_url}/subscribe",
    }


def _masks(plan: DigestPlan, blocks: list[tuple[str, int, str]]) -> tuple[tuple[int, str], ...]:
    out = []
    for kind, number, text in blocks:
        if kind == "always":
            out.append((ALWAYS, text))
        elif kind in ("item", "toc"):
            out.append((1 << number, text))
        elif kind == "section":
            out.append((plan.sections[number].mask, text))
        else:
            raise ValueError(f"unknown block kind {kind!r} in a digest template")
    return tuple(out)


def render_digest(plan: DigestPlan, context: Mapping) -> RenderedDigest:
    """The edition's HTML and text, every item present, cut into masked blocks."""
    html = render_html("digest.mjml", context)
    text = render_text("digest.txt", context)
    return RenderedDigest(_masks(plan, split_blocks(html)), _masks(plan, split_blocks(text)))


def personalise(rendered: RenderedDigest, mask: int, values: Mapping[str, str]) -> tuple[str, str]:
    """One recipient's (html, text): the blocks their ``mask`` selects, placeholders filled."""
    html = "".join([t for m, t in rendered.html_blocks if m & mask])
    text = "".join([t for m, t in rendered.text_blocks if m & mask])
    return fill(html, values, html=True), fill(text, values, html=False)
