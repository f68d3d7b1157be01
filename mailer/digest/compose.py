"""From an edition to each recipient's finished message.

:func:`prepare_edition` does the expensive work once (plan, render, shared headers);
:func:`compose` is the cheap per-recipient step that the delivery workers call. The web
faces (view online, archive, preview) use :func:`copy_for` and :func:`archive_copy` over
the same prepared render.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.digest.clip import SECTION_CAP
from mailer.digest.editions import MONTHS, edition_items, parse_period
from mailer.digest.models import Edition
from mailer.digest.plan import DigestPlan, plan_digest
from mailer.digest.render import (
    MORE,
    RenderedDigest,
    assemble,
    digest_context,
    encode_values,
    personalise,
    render_digest,
)
from mailer.mail.message import Envelope, MessageTemplate
from mailer.settings import Settings
from subscribers.links import Links
from subscribers.service import Recipient

LIST_NAME = "End Racism This Generation digest"


@dataclass(frozen=True)
class PreparedEdition:
    edition_id: int
    period: str
    subject: str
    plan: DigestPlan
    rendered: RenderedDigest
    template: MessageTemplate
    links: Links
    # (topic ids, partner ids) -> _Copy: what every reader with those choices shares.
    copies: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class _Copy:
    mask: int  # the reader's items (0: nothing to read)
    copy_mask: int  # the blocks of their emailed copy: capped sections, "more" lines
    encoded: tuple  # (html, text) pre-encoded values: reason, item count, "more" counts


def period_label(period: str) -> str:
    start, _ = parse_period(period)
    return f"{MONTHS[start.month - 1]} {start.year}"


def load_plan(session: Session, edition: Edition) -> DigestPlan:
    items = edition_items(session, edition.id)
    topics = list(session.scalars(select(Topic)))
    partners = list(session.scalars(select(Partner)))
    return plan_digest(
        items,
        topics,
        partners,
        featured_item_id=edition.featured_item_id,
        item_order=edition.item_order,
        networks=edition.networks,
    )


def prepare_edition(
    session: Session, edition: Edition, settings: Settings, timings: dict[str, float] | None = None
) -> PreparedEdition:
    """Everything about ``edition`` that is the same for every recipient.

    ``timings`` (optional) receives each rendering stage's seconds (see render_digest).
    """
    plan = load_plan(session, edition)
    context = digest_context(
        plan,
        subject=edition.subject,
        intro=edition.intro,
        preheader=edition.preheader,
        period_label=period_label(edition.period),
        settings=settings,
    )
    return PreparedEdition(
        edition_id=edition.id,
        period=edition.period,
        subject=edition.subject,
        plan=plan,
        rendered=render_digest(plan, context, timings),
        template=message_template(settings, edition.subject),
        links=Links(settings),
    )


def message_template(settings: Settings, subject: str) -> MessageTemplate:
    return MessageTemplate(
        mail_from=settings.mail_from,
        subject=subject,
        list_id=settings.list_id,
        list_name=LIST_NAME,
        list_unsubscribe_mailto=settings.unsubscribe_mailto,
    )


def item_count(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def personal_values(prepared: PreparedEdition, recipient: Recipient) -> dict[str, str]:
    """The placeholder values that are ``recipient``'s own: greeting, address and links.
    (Those that depend only on their choices come from :func:`choice_values`.)"""
    links, sid, version = prepared.links, recipient.id, recipient.token_version
    return {
        "GREETING": f" {recipient.name}" if recipient.name else "",
        "EMAIL": recipient.email,
        "MANAGE_URL": links.manage(sid, version),
        "UNSUBSCRIBE_URL": links.unsubscribe(sid, version),
        "VIEW_URL": links.view(prepared.period, sid, version),
    }


def choice_values(plan: DigestPlan, topic_ids, partner_ids, mask: int) -> dict[str, str]:
    """The reason for the email and the number of items (``mask``) in the copy."""
    return {"WHY": plan.why(topic_ids, partner_ids), "ITEM_COUNT": item_count(mask.bit_count())}


def compose(
    prepared: PreparedEdition,
    recipient: Recipient,
    *,
    to_address: str | None = None,
    template: MessageTemplate | None = None,
) -> Envelope | None:
    """``recipient``'s digest, or None when none of the edition's items is for them.

    Each section shows at most :data:`~mailer.digest.clip.SECTION_CAP` items, then "and N
    more online" (a link to that section of the recipient's web copy), so no copy grows
    past Gmail's clipping size. ``to_address``/``template`` send the same copy elsewhere
    under another subject (test sends); normal delivery leaves both unset.
    """
    key = (recipient.topic_ids, recipient.partner_ids)
    copy = prepared.copies.get(key)
    if copy is None:
        copy = _emailed_copy(prepared, *key)
        if len(prepared.copies) < 20_000:
            prepared.copies[key] = copy
    if not copy.mask:
        return None
    values = personal_values(prepared, recipient)
    html, text = assemble(prepared.rendered, copy.copy_mask, values, copy.encoded)
    return (template or prepared.template).build_encoded(
        to_name=recipient.name if to_address is None else "",
        to_address=to_address or recipient.email,
        text_qp=text,
        html_qp=html,
        unsubscribe_url=values["UNSUBSCRIBE_URL"],
        unsubscribe_mailto=prepared.links.unsubscribe_mailto(recipient.id, recipient.token_version),
    )


def _emailed_copy(prepared: PreparedEdition, topic_ids, partner_ids) -> _Copy:
    """The part of an emailed copy that depends only on the reader's choices."""
    plan, rendered = prepared.plan, prepared.rendered
    mask = plan.mask_for(topic_ids, partner_ids)
    if not mask:
        return _Copy(0, 0, ({}, {}))
    shown, more = plan.capped(mask, SECTION_CAP)
    copy_mask = rendered.recipient_mask(shown)
    shared = choice_values(plan, topic_ids, partner_ids, mask)  # one placement per item
    for number, hidden in more:
        copy_mask |= rendered.more_bit(number)
        shared[f"{MORE}{number}"] = str(hidden)
    return _Copy(mask, copy_mask, encode_values(shared))


def copy_for(prepared: PreparedEdition, recipient: Recipient) -> tuple[str, str] | None:
    """``recipient``'s copy as (html, text) for the web (view online, preview): every one
    of their items, no section capped."""
    mask = prepared.plan.mask_for(recipient.topic_ids, recipient.partner_ids)
    if not mask:
        return None
    values = personal_values(prepared, recipient)
    values.update(choice_values(prepared.plan, recipient.topic_ids, recipient.partner_ids, mask))
    return personalise(prepared.rendered, prepared.rendered.recipient_mask(mask), values)


def archive_copy(prepared: PreparedEdition) -> tuple[str, str]:
    """The public copy: every item, no greeting by name, no personal links."""
    plan = prepared.plan
    every_item = plan.mask_for(plan.topic_names, plan.partner_names)
    return personalise(
        prepared.rendered,
        prepared.rendered.public_mask(every_item),
        {
            "GREETING": "",
            "EMAIL": "",
            "WHY": "",
            "MANAGE_URL": "",
            "UNSUBSCRIBE_URL": "",
            "VIEW_URL": "",
            "ITEM_COUNT": item_count(len(plan.items)),
        },
    )
