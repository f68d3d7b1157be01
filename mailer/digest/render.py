"""Rendering an edition once, and choosing each recipient's copy from that render.

The stages, each callable and timeable on its own:

1. :func:`digest_sources` - Jinja2 renders ``digest.mjml`` and ``digest.txt`` with every
   item present, block markers and placeholders from a fresh :class:`Markers` (a random
   nonce in every marker name, so partner text can never be, or make, one of them).
2. :func:`mailer.mail.rendering.compile_mjml` - MJML to HTML (~100 ms for 60 items).
3. :func:`mailer.mail.rendering.inline_css` - premailer (~50-100 ms).
4. :func:`cut` - split both outputs at their block markers and placeholders into
   :class:`Pieces`, with every literal piece quoted-printable encoded once.

:func:`render_digest` runs 1-4 once per edition, whatever the number of subscribers or
combinations of choices. Per recipient only :func:`assemble` (messages: joins pre-encoded
bytes) or :func:`personalise` (web pages: joins text) runs.

Masks: item ``n`` is bit ``n``; a section's mask is the OR of its items'. Two more bits
tell the personal copy from the public one (the archive): blocks marked ``personal``
(greeting, view-online, manage and unsubscribe links) carry :attr:`Pieces.personal_bit`,
blocks marked ``public`` (the archive's "subscribe" footer) carry :attr:`Pieces.public_bit`.
Then one bit per section for its "and N more online" line, which only emailed copies
whose section was capped select (see :mod:`mailer.digest.clip`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape

from markupsafe import Markup

from mailer.digest.plan import DigestPlan
from mailer.mail.message import qp_fragment
from mailer.mail.rendering import Markers, compile_mjml, inline_css, render_text, template_source

ALWAYS = -1  # a block every copy gets

# Personal values each digest needs (see templates/email/digest.*), and the one filled
# per capped section (MORE_<section number>, only in emailed copies).
PERSONAL = ("GREETING", "EMAIL", "WHY", "MANAGE_URL", "UNSUBSCRIBE_URL", "VIEW_URL", "ITEM_COUNT")
MORE = "MORE_"
DEFAULT_PREHEADER = "This month from the campaign's partners: "


_SELECTIONS_KEPT = 20_000  # distinct copies remembered (~1 KB each); 8 topics x 6 partners is 16,384


@dataclass(frozen=True)
class Pieces:
    """One rendered body cut for assembly.

    ``text``: ``(mask, literal, placeholder)`` triples (exactly one of the last two set).
    ``encoded``: the same sequence with literals already quoted-printable (bytes) and
    placeholders left as their names (str), for :func:`assemble`.
    """

    text: tuple[tuple[int, str, str], ...]
    encoded: tuple[tuple[int, bytes | str], ...]
    _selections: dict = field(default_factory=dict, compare=False, repr=False)

    def select(self, mask: int) -> tuple[list[bytes | str], tuple[tuple[int, str], ...]]:
        """The encoded pieces ``mask`` selects, and (index, placeholder) for each slot.

        Remembered per mask: recipients with the same choices share one selection (a list
        of references to the same bytes), so most copies skip the walk over all pieces.
        """
        hit = self._selections.get(mask)
        if hit is None:
            parts = [p for m, p in self.encoded if m & mask]
            hit = (parts, tuple((i, p) for i, p in enumerate(parts) if p.__class__ is str))
            if len(self._selections) >= _SELECTIONS_KEPT:
                self._selections.clear()
            self._selections[mask] = hit
        return hit


@dataclass(frozen=True)
class RenderedDigest:
    html: Pieces
    plain: Pieces
    personal_bit: int
    public_bit: int

    def more_bit(self, section_number: int) -> int:
        """The bit of a section's "and N more online" line."""
        return self.public_bit << (1 + section_number)

    def recipient_mask(self, item_mask: int) -> int:
        """A recipient's copy: their items and the personal blocks (none if no items)."""
        return item_mask | self.personal_bit if item_mask else 0

    def public_mask(self, item_mask: int) -> int:
        """The public copy (archive): the given items and the public blocks."""
        return item_mask | self.public_bit


def digest_context(
    plan: DigestPlan, *, subject: str, intro: str, period_label: str, settings, preheader: str = "", lang: str = "en"
) -> dict:
    """The template variables, all of them data. An empty ``preheader`` means the default
    one, which counts each copy's own items (a placeholder filled per copy)."""
    items = plan.items
    return {
        "subject": subject,
        "intro": intro,
        "preheader": preheader,
        "period_label": period_label,
        "sections": plan.sections,
        "items": items,
        "lang": lang,
        "sender_name": "End Racism This Generation",
        "postal_address": settings.postal_address,
        "subscribe_url": f"{settings.base_url}/subscribe",
        "archive_url": f"{settings.base_url}/archive",
    }


def digest_sources(context: Mapping, markers: Markers) -> tuple[str, str]:
    """Stage 1: (MJML source, plain text) with every item present and ``markers``'s blocks
    and placeholders. The subject becomes a placeholder too (see :func:`render_digest`)."""
    context = {**context, **markers.context(), "subject": markers.ph("SUBJECT")}
    if not context["preheader"]:
        context["preheader"] = Markup.escape(DEFAULT_PREHEADER) + markers.ph("ITEM_COUNT")
    return template_source("digest.mjml", context), render_text("digest.txt", context)


def _split(text: str, mask: int, markers: Markers) -> list[tuple[int, str, str]]:
    out, pos = [], 0
    for m in markers.placeholder_re.finditer(text):
        if m.start() > pos:
            out.append((mask, text[pos : m.start()], ""))
        out.append((mask, "", m.group(1)))
        pos = m.end()
    if pos < len(text):
        out.append((mask, text[pos:], ""))
    return out


def _allowed(name: str) -> bool:
    return name in PERSONAL or (name.startswith(MORE) and name[len(MORE) :].isdigit())


def cut(plan: DigestPlan, rendered: str, markers: Markers) -> Pieces:
    """Stage 4: ``rendered`` cut at ``markers``'s blocks and placeholders, literals encoded
    once. Only markers of this render count: any other text, whatever it looks like, is a
    literal. A block kind or placeholder the code does not know raises ``ValueError`` here,
    at render time, never later for one recipient."""
    n = plan.bits
    personal_bit, public_bit = 1 << n, 1 << (n + 1)
    triples: list[tuple[int, str, str]] = []
    for kind, number, text in markers.split(rendered):
        if kind == "always":
            mask = ALWAYS
        elif kind == "item":
            mask = 1 << number
        elif kind in ("section", "toc"):
            mask = plan.sections[number].mask
        elif kind == "personal":
            mask = personal_bit
        elif kind == "public":
            mask = public_bit
        elif kind == "more":
            mask = public_bit << (1 + number)
        else:
            raise ValueError(f"unknown block kind {kind!r} in a digest template")
        triples.extend(_split(text, mask, markers))
    unknown = {name for _, _, name in triples if name and not _allowed(name)}
    if unknown:
        raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))} in a digest template")
    # Adjacent literals with the same mask become one piece: fewer pieces to walk per copy.
    merged: list[tuple[int, str, str]] = []
    for m, lit, name in triples:
        if lit and merged and merged[-1][1] and merged[-1][0] == m:
            merged[-1] = (m, merged[-1][1] + lit, "")
        else:
            merged.append((m, lit, name))
    return Pieces(
        text=tuple(merged),
        encoded=tuple((m, qp_fragment(lit) if not name else name) for m, lit, name in merged),
    )


def render_digest(plan: DigestPlan, context: Mapping, timings: dict[str, float] | None = None) -> RenderedDigest:
    """The edition's HTML and text, every item present, cut into masked pieces.

    Runs MJML and the inliner exactly once each. ``timings`` (if given) receives the
    seconds each stage took: ``jinja``, ``mjml``, ``inline``, ``cut``.
    """
    markers = Markers()
    t0 = time.perf_counter()
    source, plain = digest_sources(context, markers)
    t1 = time.perf_counter()
    # The subject is the same for every copy, so it is filled here, escaped for an
    # attribute: MJML copies <mj-title> into aria-label after decoding its quotes.
    subject = escape(markers.defuse(context["subject"]), quote=True)
    html = compile_mjml(source).replace(markers.ph("SUBJECT"), subject)
    t2 = time.perf_counter()
    html = inline_css(html)
    t3 = time.perf_counter()
    n = plan.bits
    result = RenderedDigest(cut(plan, html, markers), cut(plan, plain, markers), 1 << n, 1 << (n + 1))
    if timings is not None:
        timings.update(jinja=t1 - t0, mjml=t2 - t1, inline=t3 - t2, cut=time.perf_counter() - t3)
    return result


def personalise(rendered: RenderedDigest, mask: int, values: Mapping[str, str]) -> tuple[str, str]:
    """(html, text) for a copy selecting ``mask``, placeholders filled (HTML-escaped in HTML).

    ``mask`` is a full copy mask: :meth:`RenderedDigest.recipient_mask` or ``public_mask``.
    A placeholder without a value raises ``KeyError``: a half-personalised email is a bug.
    """
    html = "".join([lit or escape(values[name]) for m, lit, name in rendered.html.text if m & mask])
    text = "".join([lit or values[name] for m, lit, name in rendered.plain.text if m & mask])
    return html, text


def encode_values(values: Mapping[str, str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """``values`` quoted-printable encoded for the (html, text) parts (HTML-escaped first)."""
    text_vals, html_vals = {}, {}
    for k, v in values.items():
        text_vals[k] = encoded = qp_fragment(v)
        safe = escape(v)
        html_vals[k] = encoded if safe == v else qp_fragment(safe)
    return html_vals, text_vals


def assemble(
    rendered: RenderedDigest,
    mask: int,
    values: Mapping[str, str],
    encoded: tuple[Mapping[str, bytes], Mapping[str, bytes]] | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """(html, text) bodies quoted-printable encoded, ready for the MIME message, each as
    the list of its pieces: the message builder joins them with its headers in one go
    (joining each body first copied every message's text twice).

    The per-recipient hot path: choose pre-encoded pieces, encode only the few values.
    ``encoded`` holds values already encoded (:func:`encode_values`), shared by copies.
    """
    html_vals, text_vals = encode_values(values)
    if encoded is not None:
        html_vals.update(encoded[0])
        text_vals.update(encoded[1])
    return _join(rendered.html, mask, html_vals), _join(rendered.plain, mask, text_vals)


def _join(pieces: Pieces, mask: int, values: Mapping[str, bytes]) -> list[bytes]:
    """The pieces ``mask`` selects, each placeholder replaced by its value."""
    shared, slots = pieces.select(mask)
    parts = shared.copy()
    for i, name in slots:
        parts[i] = values[name]
    return parts


@dataclass(frozen=True)
class RenderedOnce:
    """An email with no per-reader blocks, only placeholders (a group's daily digest):
    rendered once, filled per reader by :func:`fill_once`."""

    html: Pieces
    plain: Pieces
    placeholders: frozenset[str]


def render_once(template: str, context: Mapping, placeholders: tuple[str, ...]) -> RenderedOnce:
    """``templates/email/<template>.mjml`` and ``.txt`` through Jinja2, MJML and the
    inliner once, with ``ph(NAME)`` markers (a fresh nonce, so no data in ``context`` can
    make one) cut out for :func:`fill_once`. ``context["subject"]`` becomes a placeholder
    filled after MJML, as in :func:`render_digest`. Unknown placeholders raise here."""
    markers = Markers()
    full = {**context, **markers.context(), "subject": markers.ph("SUBJECT")}
    source, plain = template_source(f"{template}.mjml", full), render_text(f"{template}.txt", full)
    subject = escape(markers.defuse(context["subject"]), quote=True)
    html = inline_css(compile_mjml(source).replace(markers.ph("SUBJECT"), subject))
    plain = plain.replace(markers.ph("SUBJECT"), markers.defuse(context["subject"]))
    allowed = frozenset(placeholders)
    cut_parts = []
    for text in (html, plain):
        triples = [t for _, _, chunk in markers.split(text) for t in _split(chunk, ALWAYS, markers)]
        unknown = {name for _, _, name in triples if name and name not in allowed}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))} in {template}")
        cut_parts.append(
            Pieces(
                text=tuple(triples),
                encoded=tuple((m, qp_fragment(lit) if not name else name) for m, lit, name in triples),
            )
        )
    return RenderedOnce(cut_parts[0], cut_parts[1], allowed)


def fill_once(rendered: RenderedOnce, values: Mapping[str, str]) -> tuple[list[bytes], list[bytes]]:
    """(html, text) quoted-printable bodies of one reader's copy, as lists of pieces (see
    :func:`assemble`): ``values`` encoded (and HTML-escaped in the HTML) into the
    pre-encoded pieces. A missing value raises."""
    html_vals, text_vals = encode_values(values)
    return _join(rendered.html, ALWAYS, html_vals), _join(rendered.plain, ALWAYS, text_vals)


def show_once(rendered: RenderedOnce, values: Mapping[str, str]) -> tuple[str, str]:
    """(html, text) of one copy as strings (web pages, tests)."""
    html = "".join([lit or escape(values[name]) for _, lit, name in rendered.html.text])
    text = "".join([lit or values[name] for _, lit, name in rendered.plain.text])
    return html, text
