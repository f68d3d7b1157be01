"""From an edition to each recipient's finished message.

:func:`prepare_edition` does the expensive work once (plan, render, shared headers);
:func:`compose` is the cheap per-recipient step that the delivery workers call.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.delivery.message import Envelope, MessageTemplate
from mailer.digest.editions import MONTHS, edition_items, parse_period
from mailer.digest.models import Edition
from mailer.digest.plan import DigestPlan, plan_digest
from mailer.digest.render import RenderedDigest, digest_context, personalise, render_digest
from mailer.settings import Settings
from subscribers.links import Links
from subscribers.service import Recipient


@dataclass(frozen=True)
class PreparedEdition:
    edition_id: int
    plan: DigestPlan
    rendered: RenderedDigest
    template: MessageTemplate
    links: Links


def period_label(period: str) -> str:
    start, _ = parse_period(period)
    return f"{MONTHS[start.month - 1]} {start.year}"


def load_plan(session: Session, edition: Edition) -> DigestPlan:
    items = edition_items(session, edition.id)
    topics = list(session.scalars(select(Topic)))
    partners = list(session.scalars(select(Partner)))
    return plan_digest(items, topics, partners)


def prepare_edition(session: Session, edition: Edition, settings: Settings) -> PreparedEdition:
    """Everything about ``edition`` that is the same for every recipient."""
    plan = load_plan(session, edition)
    context = digest_context(plan, subject=edition.subject, intro=edition.intro,
                             period_label=period_label(edition.period), settings=settings)
    return PreparedEdition(
        edition_id=edition.id,
        plan=plan,
        rendered=render_digest(plan, context),
        template=MessageTemplate(
            mail_from=settings.mail_from,
            subject=edition.subject,
            list_id=settings.list_id,
            list_name="End Racism This Generation digest",
            list_unsubscribe_mailto=settings.unsubscribe_mailto,
        ),
        links=Links(settings),
    )


def compose(prepared: PreparedEdition, recipient: Recipient) -> Envelope | None:
    """``recipient``'s digest, or None when none of the edition's items is for them."""
    mask = prepared.plan.mask_for(recipient.topic_ids, recipient.partner_ids)
    if not mask:
        return None
    links = prepared.links
    unsubscribe_url = links.unsubscribe(recipient.id, recipient.token_version)
    html, text = personalise(prepared.rendered, mask, {
        "GREETING": f" {recipient.name}" if recipient.name else "",
        "EMAIL": recipient.email,
        "WHY": prepared.plan.why(recipient.topic_ids, recipient.partner_ids),
        "MANAGE_URL": links.manage(recipient.id, recipient.token_version),
        "UNSUBSCRIBE_URL": unsubscribe_url,
    })
    return prepared.template.build(to_name=recipient.name, to_address=recipient.email,
                                   text=text, html=html, unsubscribe_url=unsubscribe_url)
