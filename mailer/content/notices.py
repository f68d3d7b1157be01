"""Emails to a partner's contact about one item: a receipt when it arrives, and the
editor's decision (approved, or rejected with the reason).

They go only to the partner's registered contact (``Partner.contact_email``, set by the
campaign team), never to the address typed into the form or the API: whoever holds a
submission link or token could type anyone's address, and a receipt per post would make
us a mail cannon aimed at strangers. The typed address stays on the item for the editors
to reply to by hand. Items a person did not send in (feed entries, which carry no typed
contact) get no notices.

Each kind is rendered once per process with placeholders and filled per item, like the
subscriber emails. Which notice is owed is decided from the item's columns
(``receipt_sent_at``, ``decision_sent_at``), never from the queue.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import APPROVED, REJECTED, Item
from mailer.mail.message import Envelope, MessageTemplate
from mailer.mail.rendering import fill, render_html, render_text
from mailer.settings import Settings

RECEIPT, APPROVED_NOTICE, REJECTED_NOTICE = "receipt", "approved", "rejected"
NOTICE_KINDS = (RECEIPT, APPROVED_NOTICE, REJECTED_NOTICE)
SUBJECT_TITLE_MAX = 60


def subject_title(title: str) -> str:
    """The only part of a notice's subject the poster chooses: the title on one line,
    without control, format (bidi) or unassigned characters, cut at a word to at most
    :data:`SUBJECT_TITLE_MAX` characters. The rest of the subject is ours."""
    visible = "".join(ch for ch in title if ch.isspace() or unicodedata.category(ch)[0] != "C")
    short = " ".join(visible.split())  # any run of spaces or line breaks becomes one space
    if len(short) > SUBJECT_TITLE_MAX:
        cut = short[: SUBJECT_TITLE_MAX - 1]
        if " " in cut[SUBJECT_TITLE_MAX // 2 :]:
            cut = cut.rsplit(" ", 1)[0]
        short = cut + "…"
    return short or "(untitled)"


def _subject(kind: str, title: str) -> str:
    short = subject_title(title)
    return {
        RECEIPT: f"Received: {short}",
        APPROVED_NOTICE: f"Approved for the digest: {short}",
        REJECTED_NOTICE: f"Not accepted for the digest: {short}",
    }[kind]


@lru_cache(maxsize=8)
def _rendered(kind: str, postal_address: str) -> tuple[str, str]:
    context = {
        "kind": kind,
        "subject": "Your item for the campaign digest",
        "sender_name": "End Racism This Generation",
        "postal_address": postal_address,
    }
    return render_html("partner_notice.mjml", context), render_text("partner_notice.txt", context)


def notice_address(item: Item) -> str | None:
    """Where notices about ``item`` go: its partner's registered contact, for items a
    person sent in (form or API, with a typed contact); None when nobody is to hear."""
    if not item.contact_email:
        return None
    return item.partner.contact_email or None


def notice_owed(kind: str, item: Item) -> bool:
    """True when ``item``'s partner should get the ``kind`` notice and has not yet."""
    if notice_address(item) is None:
        return False
    if kind == RECEIPT:
        return item.receipt_sent_at is None
    wanted = APPROVED if kind == APPROVED_NOTICE else REJECTED
    return item.status == wanted and item.decision_sent_at is None


def decision_kind(item: Item) -> str | None:
    return {APPROVED: APPROVED_NOTICE, REJECTED: REJECTED_NOTICE}.get(item.status)


def decisions_owed(session: Session, item_ids) -> list[tuple[str, int]]:
    """``(kind, item_id)`` of the decision notice owed for each of ``item_ids`` whose contact
    has not heard yet (for the caller to enqueue after its commit)."""
    owed = []
    for item in session.scalars(select(Item).where(Item.id.in_(list(item_ids)))):
        kind = decision_kind(item)
        if kind and notice_owed(kind, item):
            owed.append((kind, item.id))
    return owed


def compose_notice(kind: str, settings: Settings, item: Item) -> Envelope:
    """The ``kind`` notice about ``item`` for its partner's registered contact."""
    html, text = _rendered(kind, settings.postal_address)
    values = {
        "PARTNER": item.partner.name,
        "TITLE": item.title,
        "REF": str(item.id),
        "REASON": item.decision_reason or "",
        "LINK": item.link,
    }
    template = MessageTemplate(
        mail_from=settings.mail_from,
        subject=_subject(kind, item.title),
        auto_submitted=True,
        reply_to=settings.reply_to,
    )
    return template.build(
        to_name="",
        to_address=notice_address(item),
        text=fill(text, values, html=False),
        html=fill(html, values, html=True),
    )
