"""One-off emails to one person: confirmation, "already subscribed" and manage links.

Each template is rendered once per process with placeholders, then filled per email, so
a burst of sign-ups costs no MJML compiles.
"""

from __future__ import annotations

from email.utils import parseaddr
from functools import lru_cache
from html import escape

from mailer.mail.message import Envelope, MessageTemplate
from mailer.mail.rendering import fill, render_html, render_text
from mailer.settings import Settings
from subscribers.links import Links
from subscribers.models import Subscriber

SUBJECTS = {
    "confirm": "Please confirm your subscription to the campaign digest",
    "manage": "Your subscription to the campaign digest",
    "link": "Your link to manage the campaign digest",
}


@lru_cache(maxsize=16)
def _rendered(kind: str, postal_address: str, max_age_days: int) -> tuple[str, str]:
    context = {
        "subject": SUBJECTS[kind],
        "sender_name": "End Racism This Generation",
        "postal_address": postal_address,
        "max_age_days": max_age_days,
    }
    return render_html(f"{kind}.mjml", context), render_text(f"{kind}.txt", context)


def compose_transactional(kind: str, settings: Settings, sub: Subscriber) -> Envelope:
    """The ``kind`` email ("confirm" or "manage") for ``sub``, ready for the transport."""
    html, text = _rendered(kind, settings.postal_address, settings.confirm_max_age_days)
    links = Links(settings)
    values = {
        "GREETING": f" {sub.name}" if sub.name else "",
        "EMAIL": sub.email,
        "CONFIRM_URL": links.confirm(sub.id, sub.token_version),
        "MANAGE_URL": links.manage(sub.id, sub.token_version),
    }
    # Auto-Submitted (RFC 3834): sent in answer to a request, so auto-responders keep quiet.
    template = MessageTemplate(mail_from=settings.mail_from, subject=SUBJECTS[kind], auto_submitted=True)
    return template.build(
        to_name=sub.name, to_address=sub.email, text=fill(text, values, html=False), html=fill(html, values, html=True)
    )


def editors_notice(settings: Settings, subject: str, text: str) -> Envelope:
    """A short plain note to the editors (``REPLY_TO``) from the service itself, such as
    "this month's edition had nothing in it". ``subject`` and ``text`` are our own words."""

    template = MessageTemplate(mail_from=settings.mail_from, subject=subject, auto_submitted=True)
    return template.build(
        to_name="",
        to_address=parseaddr(settings.reply_to)[1],
        text=text + "\n",
        html=f"<!doctype html><html><body><p>{escape(text)}</p></body></html>",
    )
