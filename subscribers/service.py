"""The subscription lifecycle: subscribe, confirm, change preferences, pause, unsubscribe,
re-subscribe, revoke links; and who receives the next digest.

Functions take a ``Session`` and never commit. Each one that changes consent appends a
:class:`ConsentEvent`, so the ledger explains every state a subscriber has been in.

The "no topic chosen" rule: a subscriber who chooses no topics receives only items from the
partners they follow; choosing neither a topic nor a partner is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from mailer.db import among, core, utcnow
from mailer.validation import InvalidInput, email_address
from subscribers import suppression
from subscribers.models import (
    CONFIRMED,
    PENDING,
    UNSUBSCRIBED,
    ConsentEvent,
    Subscriber,
    subscriber_partners,
    subscriber_topics,
)
from subscribers.profile import (  # noqa: F401  (re-exported: callers use service.*)
    MAX_PAUSE_DAYS,
    NO_CHOICE_MESSAGE,
    NO_TOPIC_RULE,
    Choices,
    choices_from_request,
    clean_organisation_type,
    clean_practice_code,
    request_data,
    validate_choices,
)
from subscribers.tokens import TokenError, Tokens

# Bump when the consent wording on the subscribe form changes; the ledger records it.
CONSENT_WORDING_VERSION = "2026-11"


def record(session: Session, subscriber: Subscriber, kind: str, source: str, ip: str | None, detail: str = "") -> None:
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
    """Create a pending subscriber, or replace an existing one's pending request.

    Anyone can type any address, so nothing typed here touches the profile: name,
    organisation and choices wait in ``pending_request`` until the address's owner
    confirms (:func:`confirm` applies them). A new subscriber's row stays blank until then,
    so the confirmation email greets nobody by a name a stranger chose. A confirmed address
    is left untouched; its owner is mailed a manage link. An unsubscribed address goes back
    to pending, keeping its old profile, and stays suppressed until confirmed.
    """
    address = email_address("email", email)
    existing = by_address(session, address)
    if existing is not None and existing.status == CONFIRMED:
        return SubscribeOutcome(existing, "manage")
    sub = existing or Subscriber(email=address, topics=[], partners=[])
    sub.pending_request = request_data(choices)
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
        raise TokenError(
            "This link has been replaced by a newer one. Use the link in your most recent email, or ask for a new one.",
            "revoked",
        )
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
    applied = apply_pending_request(session, sub)
    sub.status, sub.confirmed_at, sub.unsubscribed_at = CONFIRMED, utcnow(), None
    suppression.lift(session, sub.email)
    record(session, sub, "confirmed", "link", ip, detail="with the profile and choices requested" if applied else "")
    return True


def pending_choices(session: Session, sub: Subscriber) -> Choices | None:
    """What ``sub``'s unconfirmed request asks for, or None (shown before confirming)."""
    return choices_from_request(session, sub.pending_request) if sub.pending_request else None


def apply_pending_request(session: Session, sub: Subscriber) -> bool:
    """Make the pending request the profile (the owner has confirmed it); False if none.

    Should every topic and partner asked for be gone by now, the earlier choices stay.
    """
    requested = pending_choices(session, sub)
    sub.pending_request = None
    if requested is None:
        return False
    if not requested.topics and not requested.partners:
        requested = Choices(
            requested.name,
            requested.organisation,
            list(sub.topics),
            list(sub.partners),
            requested.organisation_type,
            requested.practice_code,
        )
    _apply(sub, requested)
    return True


def update_preferences(
    session: Session,
    sub: Subscriber,
    choices: Choices,
    *,
    ip: str | None = None,
    source: str = "link",
) -> None:
    """Replace the profile and choices; takes effect from the next edition.

    The owner (holding a manage link) has the last word: a pending request made through
    the subscribe form is dropped.
    """
    _apply(sub, choices)
    sub.pending_request = None
    record(session, sub, "changed", source, ip, detail=f"topics={len(choices.topics)} partners={len(choices.partners)}")


def pause(
    session: Session, sub: Subscriber, until: date, *, today: date, ip: str | None = None, source: str = "link"
) -> None:
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


def suppress_address(session: Session, email: str, reason: str, *, source: str) -> str:
    """Never mail ``email`` again until its owner opts in afresh: suppress the address and
    unsubscribe its subscriber, if any. Returns the normalised address; raises
    :class:`InvalidInput` for a malformed one (and changes nothing)."""
    address = email_address("email", email)
    sub = by_address(session, address)
    if sub is not None:
        unsubscribe(session, sub, source=source)
    suppression.suppress(session, address, reason, source)
    return address


def resubscribe(session: Session, sub: Subscriber, *, ip: str | None = None) -> None:
    """An unsubscribed person asks to come back: pending again, with their old choices,
    until they confirm the fresh link (the suppression stays until then)."""
    if sub.status != UNSUBSCRIBED:
        raise InvalidInput("status", "This address is not unsubscribed.")
    sub.status, sub.requested_at, sub.pending_request = PENDING, utcnow(), None
    record(session, sub, "subscribed", "link", ip, detail="re-subscribed from the preferences page")


def revoke_links(session: Session, sub: Subscriber, *, source: str = "link", ip: str | None = None) -> None:
    """Make every link already sent to ``sub`` stop working (a new version is issued)."""
    sub.token_version += 1
    record(session, sub, "revoked", source, ip, detail="all earlier links revoked")


def consent_events(session: Session, sub: Subscriber) -> list[ConsentEvent]:
    """``sub``'s consent ledger, oldest first."""
    return list(
        session.scalars(
            select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id).order_by(ConsentEvent.at, ConsentEvent.id)
        )
    )


def link_email_for(sub: Subscriber) -> str | None:
    """Which email gives ``sub`` their way back in: a fresh manage link (``"link"``) when
    they are confirmed or unsubscribed, the confirmation link again (``"confirm"``) while
    pending; None when erased (there is nobody to write to)."""
    return {CONFIRMED: "link", UNSUBSCRIBED: "link", PENDING: "confirm"}.get(sub.status)


def find(session: Session, email: str) -> Subscriber | None:
    """The subscriber with ``email`` (any spelling email-validator normalises), or None."""
    try:
        address = email_address("email", email)
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


def receives_digests(today: date):
    """The condition on ``Subscriber`` rows of who receives digests on ``today`` (confirmed,
    not paused), before the suppression list (keyed hashes: checked in Python): the rule
    :func:`recipients` applies, as SQL for the fan-out's ``INSERT ... SELECT``."""
    return and_(
        Subscriber.status == CONFIRMED, or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= today)
    )


def recipients(session: Session, ids: Sequence[int] | None = None, *, today: date | None = None) -> list[Recipient]:
    """Subscribers who receive digests now (all, or those in ``ids``) with their choices.

    That is: confirmed, not paused on ``today`` (default: the UTC date), and not on the
    suppression list. Four queries, whatever the number of subscribers.
    """
    today = today or utcnow().date()
    q = select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.token_version).where(
        or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= today)
    )
    if ids is None:
        q = q.where(Subscriber.status == CONFIRMED)
    else:
        # A delivery batch asks for a few hundred ids. Wrapped in a function, the status test
        # cannot lead PostgreSQL's planner to walk the status index over every confirmed
        # subscriber (100,000 rows a batch); it finds the rows by primary key instead.
        q = q.where(among(session, Subscriber.id, ids), func.coalesce(Subscriber.status, "") == CONFIRMED)
    conn = core(session)  # a delivery chunk runs these four for every few hundred readers
    rows = conn.execute(q.order_by(Subscriber.id)).all()
    if ids is None:
        suppressed = suppression.SuppressedSet(session)
    else:  # only this batch's addresses, not the whole list
        suppressed = suppression.suppressed_among(session, {r.email for r in rows})
    if suppressed:
        rows = [r for r in rows if r.email not in suppressed]
    wanted = {r.id for r in rows}
    topics: dict[int, set[int]] = {}
    partners: dict[int, set[int]] = {}
    tq = select(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic_id)
    pq = select(subscriber_partners.c.subscriber_id, subscriber_partners.c.partner_id)
    if ids is not None:
        tq = tq.where(among(session, subscriber_topics.c.subscriber_id, ids))
        pq = pq.where(among(session, subscriber_partners.c.subscriber_id, ids))
    # Fetched whole and unpacked as tuples: a delivery chunk makes a few thousand of these
    # rows, and row-by-row fetching and attribute access on Row objects were most of the
    # Python time of this function.
    for sid, tid in conn.execute(tq).all():
        if sid in wanted:
            topics.setdefault(sid, set()).add(tid)
    for sid, pid in conn.execute(pq).all():
        if sid in wanted:
            partners.setdefault(sid, set()).add(pid)
    none: frozenset[int] = frozenset()
    return [
        Recipient(sid, email, name, version, frozenset(topics.get(sid, none)), frozenset(partners.get(sid, none)))
        for sid, email, name, version in rows
    ]
