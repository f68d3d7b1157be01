"""Keeping every emailed copy of the digest under Gmail's clipping size.

Gmail shows only the first ~102 KB of a message's HTML and hides the rest behind "View
entire message", which takes the footer with it: the unsubscribe and preferences links and
the postal address the law asks for. Two measures keep a copy under :data:`GMAIL_CLIP_BYTES`:

- each section of an emailed copy shows at most :data:`SECTION_CAP` of the reader's items,
  then "and N more online" linking to that section of their web copy (view online shows
  everything; so does the public archive);
- :func:`largest_copy_bytes` bounds the biggest copy an edition can produce, so ``mailer
  edition build`` can warn when even capped sections could reach the limit (very many
  topics, or very long titles and summaries).
"""

from __future__ import annotations

from mailer.digest.plan import DigestPlan
from mailer.digest.render import ALWAYS, RenderedDigest

GMAIL_CLIP_BYTES = 102 * 1024  # of HTML (UTF-8), where Gmail starts clipping
SECTION_CAP = 8  # items per section in an emailed copy; the rest are "more online"

# Generous sizes for the values filled per copy (signed links run to ~150 characters,
# an address to 254), so the bound holds for any reader.
_VALUE_BYTES = {"EMAIL": 254, "GREETING": 3 * 200}
_OTHER_VALUE_BYTES = 400


def largest_copy_bytes(plan: DigestPlan, rendered: RenderedDigest, cap: int = SECTION_CAP) -> int:
    """An upper bound on the HTML bytes of any emailed copy of this edition: every fixed
    and personal block, every section at its ``cap`` largest items, every value at its
    largest. (Items a reader gets once are counted in each section they could appear in.)"""
    sizes: dict[int, int] = {}
    for mask, literal, name in rendered.html.text:
        if name:
            if name == "WHY":
                size = len(", ".join([*plan.topic_names.values(), *plan.partner_names.values()]).encode())
            else:
                size = _VALUE_BYTES.get(name, _OTHER_VALUE_BYTES)
        else:
            size = len(literal.encode("utf-8"))
        sizes[mask] = sizes.get(mask, 0) + size
    total = sizes.get(ALWAYS, 0) + sizes.get(rendered.personal_bit, 0)
    for section in plan.sections:
        total += sizes.get(section.mask, 0) + sizes.get(rendered.more_bit(section.number), 0)
        items = sorted((sizes.get(i.mask, 0) for i in section.items), reverse=True)
        total += sum(items[:cap])
    return total
