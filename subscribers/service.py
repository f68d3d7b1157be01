"""The subscription lifecycle: subscribe, confirm, change preferences, pause, unsubscribe,
re-subscribe, revoke links; and who receives the next digest.

Functions take a ``Session`` and never commit. Each one that changes consent appends a
:class:`ConsentEvent`, so the ledger explains every state a subscriber has been in.

The "no topic chosen" rule: a subscriber who chooses no topics receives only items from the
partners they follow; choosing neither a topic nor a partner is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Sequence

from email_validator import EmailNotValidError
from email_validator import validate_email as _validate_email
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.db import utcnow
from mailer.validation import InvalidInput, clean_text
from subscribers import suppression
from subscribers.models import (
    CONFIRMED,
    ORGANISATION_TYPES,
    PENDING,
    UNSUBSCRIBED,
    ConsentEvent,
    Subscriber,
)
from subscribers.tokens import TokenError, Tokens

# Bump when the consent wording on the subscribe form changes; the ledger records it.
CONSENT_WORDING_VERSION = "2026-11"
NO_CHOICE_MESSAGE = "Choose at least one topic or partner."
NO_TOPIC_RULE = ("If you choose no topics, you receive only items from the partners you follow. "
                 "Choose at least one topic or partner.")
MAX_PAUSE_DAYS = 366
ORGANISATION_TYPE_VALUES = frozenset(v for v, _ in ORGANISATION_TYPES)
# NHS ODS codes: a GP practice is a letter and five digits (A81001); other organisations
# have 3 to 6 letters and digits (trusts: RXX or RXX01).
_GP_CODE = re.compile(r"[A-Z][0-9]{5}")
_ODS_CODE = re.compile(r"[A-Z0-9]{3,6}")


def normalise_email(address: str) -> str:
    """The address in the form we store, or :class:`InvalidInput`.

    Internationalised addresses are accepted; no DNS lookup is made (deliverability is
    proven by the confirmation email, not by a resolver).
    """
    if any(ch in (address or "") for ch in "\r\n"):
        raise InvalidInput("email", "The email address must not contain line breaks.")
    try:
        return _validate_email((address or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput("email", str(exc)) from None


def clean_organisation_type(value: str | None) -> str:
    value = (value or "").strip()
    if value and value not in ORGANISATION_TYPE_VALUES:
        raise InvalidInput("organisation_type", "Choose one of the organisation types listed.")
    return value


def clean_practice_code(value: str | None, organisation_type: str) -> str:
    """An upper-cased ODS code, or "" if none was given."""
    code = clean_text("practice_code", value, 10).replace(" ", "").upper()
    if not code:
        return ""
    pattern = _GP_CODE if organisation_type == "gp_practice" else _ODS_CODE
    if not pattern.fullmatch(code):
        raise InvalidInput("practice_code", "A GP practice code is a letter and five digits, like A81001."
                           if organisation_type == "gp_practice"
                           else "An organisation code is 3 to 6 letters and digits, like RW3.")
    return code


@dataclass(frozen=True)
class Choices:
    """Validated profile fields and choices from a subscribe or preferences form."""

    name: str
    organisation: str
    topics: list[Topic]
    partners: list[Partner]
    organisation_type: str = ""
    practice_code: str = ""


def validate_choices(
    session: Session,
    name: str,
    organisation: str,
    topic_ids: Iterable[int],
    partner_ids: Iterable[int],
    organisation_type: str | None = "",
    practice_code: str | None = "",
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
    org_type = clean_organisation_type(organisation_type)
    return Choices(
        name=clean_text("name", name, 120),
        organisation=clean_text("organisation", organisation, 200),
        topics=topics,
        partners=partners,
        organisation_type=org_type,
        practice_code=clean_practice_code(practice_code, org_type),
    )


def record(session: Session, subscriber: Subscriber, kind: str, source: str, ip: str | None,
           detail: str = "") -> None:
    """Append one event to the consent ledger (never updated or deleted)."""
    session.add(
        ConsentEvent(
            subscriber_id=subscriber.id,
            kind=kind,
            source=source,
            wording_version=CONSENT_WORDING_VERSION,
            ip=ip,
            at=utcnow(),
            detail=detail[:300],
        )
    )


def _apply(sub: Subscriber, choices: Choices) -> None:
    sub.name, sub.organisation = choices.name, choices.organisation
    sub.organisation_type, sub.practice_code = choices.organisation_type, choices.practice_code
    sub.topics, sub.partners = list(choices.topics), list(choices.partners)


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
    mailed a manage link. An unsubscribed address goes back to pending and must confirm;
    until then it stays suppressed.
    """
    address = normalise_email(email)
    existing = by_address(session, address)
    if existing is not None and existing.status == CONFIRMED:
        return SubscribeOutcome(existing, "manage")
    sub = existing or Subscriber(email=address)
    _apply(sub, choices)
    sub.status, sub.requested_at, sub.consent_basis = PENDING, utcnow(), "consent"
    if existing is None:
        session.add(sub)
    session.flush()
    record(session, sub, "subscribed", source, ip)
    return SubscribeOutcome(sub, "confirm")


def subscriber_from_token(
    session: Session, tokens: Tokens, purpose: str, token: str, max_age_seconds: int | None = None
) -> Subscriber:
    """The subscriber a link is for, or :class:`TokenError` (forged, expired, revoked,
    wrong purpose, or the person was erased)."""
    claims = tokens.read(purpose, token, max_age_seconds)
    sub = session.get(Subscriber, claims.subscriber_id)
    if sub is None or sub.status == "erased":
        raise TokenError("This subscription no longer exists.", "revoked")
    if sub.token_version != claims.version:
        raise TokenError("This link has been replaced by a newer one. Use the link in your most "
                         "recent email, or ask for a new one.", "revoked")
    return sub


def confirm(session: Session, sub: Subscriber, *, ip: str | None = None) -> bool:
    """Confirm a pending subscriber. False (and no change) if already confirmed.

    Confirming is the fresh opt-in that lifts a suppression. An unsubscribed person's old
    confirmation link does not bring them back: they must subscribe again.
    """
    if sub.status == CONFIRMED:
        return False
    if sub.status != PENDING:
        raise TokenError("This subscription was cancelled. Subscribe again to restart it.", "cancelled")
    sub.status, sub.confirmed_at, sub.unsubscribed_at = CONFIRMED, utcnow(), None
    suppression.lift(session, sub.email)
    record(session, sub, "confirmed", "link", ip)
    return True


def update_preferences(
    session: Session, sub: Subscriber, choices: Choices, *, ip: str | None = None,
    source: str = "link",
) -> None:
    """Replace the profile and choices; takes effect from the next edition."""
    _apply(sub, choices)
    record(session, sub, "changed", source, ip,
           detail=f"topics={len(choices.topics)} partners={len(choices.partners)}")


def pause(session: Session, sub: Subscriber, until: date, *, today: date,
          ip: str | None = None, source: str = "link") -> None:
    """No digests before ``until`` (which must be after ``today``, within a year)."""
    if until <= today:
        raise InvalidInput("until", "Choose a date after today.")
    if until > today + timedelta(days=MAX_PAUSE_DAYS):
        raise InvalidInput("until", "You can pause for up to a year. Unsubscribe to stop for good.")
    sub.paused_until = until
    record(session, sub, "paused", source, ip, detail=f"until={until.isoformat()}")


def resume(session: Session, sub: Subscriber, *, ip: str | None = None, source: str = "link") -> bool:
    """End a pause now. False if there was none."""
    if sub.paused_until is None:
        return False
    sub.paused_until = None
    record(session, sub, "resumed", source, ip)
    return True


def is_paused(sub: Subscriber, today: date) -> bool:
    return sub.paused_until is not None and sub.paused_until > today


def unsubscribe(session: Session, sub: Subscriber, *, source: str, ip: str | None = None) -> bool:
    """Stop all mail to ``sub`` at once and suppress the address. False if already done."""
    if sub.status == UNSUBSCRIBED:
        return False
    sub.status, sub.unsubscribed_at, sub.paused_until = UNSUBSCRIBED, utcnow(), None
    suppression.suppress(session, sub.email, "unsubscribed", source)
    record(session, sub, "unsubscribed", source, ip)
    return True


def resubscribe(session: Session, sub: Subscriber, *, ip: str | None = None) -> None:
    """An unsubscribed person asks to come back: pending again, with their old choices,
    until they confirm the fresh link (the suppression stays until then)."""
    if sub.status != UNSUBSCRIBED:
        raise InvalidInput("status", "This address is not unsubscribed.")
    sub.status, sub.requested_at = PENDING, utcnow()
    record(session, sub, "subscribed", "link", ip, detail="re-subscribed from the preferences page")


def revoke_links(session: Session, sub: Subscriber, *, source: str = "link",
                 ip: str | None = None) -> None:
    """Make every link already sent to ``sub`` stop working (a new version is issued)."""
    sub.token_version += 1
    record(session, sub, "revoked", source, ip, detail="all earlier links revoked")


def find(session: Session, email: str) -> Subscriber | None:
    """The subscriber with ``email`` (any spelling email-validator normalises), or None."""
    try:
        address = normalise_email(email)
    except InvalidInput:
        return None
    return by_address(session, address)


def by_address(session: Session, address: str) -> Subscriber | None:
    """The subscriber at a normalised ``address``, ignoring the case of the local part
    (which mail systems treat as one mailbox in practice): Priya@ and priya@ are one person."""
    return session.scalar(select(Subscriber).where(func.lower(Subscriber.email) == address.lower()))


@dataclass(frozen=True)
class Recipient:
    """What the digest layer needs to know about one subscriber who gets the next digest."""

    id: int
    email: str
    name: str
    token_version: int
    topic_ids: frozenset[int]
    partner_ids: frozenset[int]


def recipients(session: Session, ids: Sequence[int] | None = None, *,
               today: date | None = None) -> list[Recipient]:
    """Subscribers who receive digests now (all, or those in ``ids``) with their choices.

    That is: confirmed, not paused on ``today`` (default: the UTC date), and not on the
    suppression list. Four queries, whatever the number of subscribers.
    """
    from subscribers.models import subscriber_partners, subscriber_topics

    today = today or utcnow().date()
    q = select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.token_version).where(
        Subscriber.status == CONFIRMED,
        or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= today),
    )
    if ids is not None:
        q = q.where(Subscriber.id.in_(ids))
    suppressed = suppression.all_hashes(session)
    rows = [r for r in session.execute(q.order_by(Subscriber.id)).all()
            if not suppressed or suppression.email_hash(r.email) not in suppressed]
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
