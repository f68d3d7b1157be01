"""The subscription lifecycle: subscribe, confirm, change preferences, unsubscribe.

Functions take a ``Session`` and never commit. Each one that changes consent appends a
:class:`ConsentEvent`, so the ledger explains every state a subscriber has been in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from email_validator import EmailNotValidError
from email_validator import validate_email as _validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.db import utcnow
from mailer.validation import InvalidInput, clean_text
from subscribers.models import CONFIRMED, PENDING, UNSUBSCRIBED, ConsentEvent, Subscriber
from subscribers.tokens import TokenError, Tokens

# Bump when the consent wording on the subscribe form changes; the ledger records it.
CONSENT_WORDING_VERSION = "2026-11"
NO_CHOICE_MESSAGE = "Choose at least one topic or partner."


def normalise_email(address: str) -> str:
    """The address in the form we store, or :class:`InvalidInput`.

    Internationalised addresses are accepted; no DNS lookup is made (deliverability is
    proven by the confirmation email, not by a resolver).
    """
    try:
        return _validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput("email", str(exc)) from None


@dataclass(frozen=True)
class Choices:
    """Validated profile fields and choices from a subscribe or preferences form."""

    name: str
    organisation: str
    topics: list[Topic]
    partners: list[Partner]


def validate_choices(
    session: Session,
    name: str,
    organisation: str,
    topic_ids: Iterable[int],
    partner_ids: Iterable[int],
) -> Choices:
    """Resolve ids to rows; unknown ids and an empty choice are :class:`InvalidInput`."""
    topic_ids, partner_ids = set(topic_ids), set(partner_ids)
    topics = list(session.scalars(select(Topic).where(Topic.id.in_(topic_ids)))) if topic_ids else []
    partners = (
        list(session.scalars(select(Partner).where(Partner.id.in_(partner_ids), Partner.active)))
        if partner_ids
        else []
    )
    if len(topics) != len(topic_ids):
        raise InvalidInput("topics", "One of the topics chosen does not exist.")
    if len(partners) != len(partner_ids):
        raise InvalidInput("partners", "One of the partners chosen does not exist.")
    if not topics and not partners:
        raise InvalidInput("topics", NO_CHOICE_MESSAGE)
    return Choices(
        name=clean_text("name", name, 120),
        organisation=clean_text("organisation", organisation, 200),
        topics=topics,
        partners=partners,
    )


def record(session: Session, subscriber: Subscriber, kind: str, source: str, ip: str | None) -> None:
    """Append one event to the consent ledger (never updated or deleted)."""
    session.add(
        ConsentEvent(
            subscriber_id=subscriber.id,
            kind=kind,
            source=source,
            wording_version=CONSENT_WORDING_VERSION,
            ip=ip,
        )
    )


@dataclass(frozen=True)
class SubscribeOutcome:
    subscriber: Subscriber
    # "confirm": send a confirmation link; "manage": the address is already confirmed, so
    # send its owner a manage link instead (the page says the same either way).
    email_to_send: str


def subscribe(
    session: Session, email: str, choices: Choices, *, source: str = "form", ip: str | None = None
) -> SubscribeOutcome:
    """Create a pending subscriber, or refresh an existing one's pending request.

    A confirmed address is left untouched (someone else may have typed it); its owner is
    mailed a manage link. An unsubscribed address goes back to pending and must confirm.
    """
    address = normalise_email(email)
    existing = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if existing is not None and existing.status == CONFIRMED:
        return SubscribeOutcome(existing, "manage")
    sub = existing or Subscriber(email=address)
    sub.name, sub.organisation = choices.name, choices.organisation
    sub.topics, sub.partners = list(choices.topics), list(choices.partners)
    sub.status = PENDING
    if existing is None:
        session.add(sub)
    session.flush()
    record(session, sub, "subscribed", source, ip)
    return SubscribeOutcome(sub, "confirm")


def subscriber_from_token(
    session: Session, tokens: Tokens, purpose: str, token: str, max_age_seconds: int | None = None
) -> Subscriber:
    """The subscriber a link is for, or :class:`TokenError` (forged, expired, revoked)."""
    claims = tokens.read(purpose, token, max_age_seconds)
    sub = session.get(Subscriber, claims.subscriber_id)
    if sub is None or sub.token_version != claims.version:
        raise TokenError("This link is no longer valid. Ask for a new one from the latest email.")
    return sub


def confirm(session: Session, sub: Subscriber, *, ip: str | None = None) -> bool:
    """Confirm a pending subscriber. False (and no change) if already confirmed.

    An unsubscribed person's old confirmation link does not bring them back: they must
    subscribe again and confirm the fresh link.
    """
    if sub.status == CONFIRMED:
        return False
    if sub.status != PENDING:
        raise TokenError("This subscription was cancelled. Subscribe again to restart it.")
    sub.status, sub.confirmed_at = CONFIRMED, utcnow()
    record(session, sub, "confirmed", "link", ip)
    return True


def update_preferences(
    session: Session, sub: Subscriber, choices: Choices, *, ip: str | None = None
) -> None:
    """Replace name, organisation, topics and partners; takes effect from the next edition."""
    sub.name, sub.organisation = choices.name, choices.organisation
    sub.topics, sub.partners = list(choices.topics), list(choices.partners)
    record(session, sub, "changed", "link", ip)


def unsubscribe(session: Session, sub: Subscriber, *, source: str, ip: str | None = None) -> bool:
    """Stop all mail to ``sub`` at once. False if they were already unsubscribed."""
    if sub.status == UNSUBSCRIBED:
        return False
    sub.status, sub.unsubscribed_at = UNSUBSCRIBED, utcnow()
    record(session, sub, "unsubscribed", source, ip)
    return True


@dataclass(frozen=True)
class Recipient:
    """What the digest layer needs to know about one confirmed subscriber."""

    id: int
    email: str
    name: str
    token_version: int
    topic_ids: frozenset[int]
    partner_ids: frozenset[int]


def recipients(session: Session, ids: Sequence[int] | None = None) -> list[Recipient]:
    """Confirmed subscribers (all, or those in ``ids``) with their choices, in three queries."""
    from subscribers.models import subscriber_partners, subscriber_topics

    q = select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.token_version).where(
        Subscriber.status == CONFIRMED
    )
    if ids is not None:
        q = q.where(Subscriber.id.in_(ids))
    rows = session.execute(q.order_by(Subscriber.id)).all()
    wanted = {r.id for r in rows}
    topics: dict[int, set[int]] = {}
    partners: dict[int, set[int]] = {}
    tq = select(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic_id)
    pq = select(subscriber_partners.c.subscriber_id, subscriber_partners.c.partner_id)
    if ids is not None:
        tq = tq.where(subscriber_topics.c.subscriber_id.in_(ids))
        pq = pq.where(subscriber_partners.c.subscriber_id.in_(ids))
    for sid, tid in session.execute(tq):
        if sid in wanted:
            topics.setdefault(sid, set()).add(tid)
    for sid, pid in session.execute(pq):
        if sid in wanted:
            partners.setdefault(sid, set()).add(pid)
    return [
        Recipient(
            r.id,
            r.email,
            r.name,
            r.token_version,
            frozenset(topics.get(r.id, ())),
            frozenset(partners.get(r.id, ())),
        )
        for r in rows
    ]
