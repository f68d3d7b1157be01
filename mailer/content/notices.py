"""Emails to a partner's contact about one item: a receipt when it arrives, and the
editor's decision (approved, or rejected with the reason).

Each kind is rendered once per process with placeholders and filled per item, like the
subscriber emails. Which notice is owed is decided from the item's columns
(``receipt_sent_at``, ``decision_sent_at``), never from the queue.
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import APPROVED, REJECTED, Item
from mailer.delivery.message import Envelope, MessageTemplate
from mailer.rendering import fill, render_html, render_text
from mailer.settings import Settings

RECEIPT, APPROVED_NOTICE, REJECTED_NOTICE = "receipt", "approved", "rejected"
NOTICE_KINDS = (RECEIPT, APPROVED_NOTICE, REJECTED_NOTICE)


def _subject(kind: str, title: str) -> str:
    short = title if len(title) <= 70 else title[:69] + "…"
    return {
        RECEIPT: f"Received: {short}",
        APPROVED_NOTICE: f"Approved for the digest: {short}",
        REJECTED_NOTICE: f"Not accepted for the digest: {short}",
    }[kind]


@lru_cache(maxsize=8)
def _rendered(kind: str, postal_address: str) -> tuple[str, str]:
    context = {"kind": kind, "subject": "Your item for the campaign digest",
               "sender_name": "End Racism This Generation", "postal_address": postal_address}
    return render_html("partner_notice.mjml", context), render_text("partner_notice.txt", context)


def notice_owed(kind: str, item: Item) -> bool:
    """True when ``item``'s contact should get the ``kind`` notice and has not yet."""
    if not item.contact_email:
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
    """The ``kind`` notice about ``item`` for its contact address."""
    html, text = _rendered(kind, settings.postal_address)
    values = {
        "PARTNER": item.partner.name,
        "TITLE": item.title,
        "REF": str(item.id),
        "REASON": item.decision_reason or "",
        "LINK": item.link,
    }
    template = MessageTemplate(mail_from=settings.mail_from, subject=_subject(kind, item.title),
                               auto_submitted=True, reply_to=settings.reply_to)
    return template.build(to_name="", to_address=item.contact_email,
                          text=fill(text, values, html=False), html=fill(html, values, html=True))
