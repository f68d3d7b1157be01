"""Group memberships: join by double opt-in, add and remove by an owner with a recorded
basis, leave by one click, choose a delivery mode. (The groups themselves:
:mod:`mailer.groups.directory`.)

Functions take a ``Session`` and never commit. Every change to a membership appends a
:class:`GroupConsentEvent`, so the ledger explains every state a member has been in.
Suppression wins: an owner cannot add an address on the suppression list (hard bounce,
complaint, unsubscribe, erasure); only the person's own confirmed join lifts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.groups.models import (
    ACTIVE,
    DELIVERY_MODES,
    EVERY,
    JOIN_PENDING,
    LEFT,
    MEMBER,
    REMOVED,
    ROLES,
    Group,
    GroupConsentEvent,
    GroupMember,
)
from mailer.validation import InvalidInput, clean_text, email_address
from subscribers import suppression
from subscribers.tokens import TokenError, Tokens

# Bump when the wording on a group's join form changes; the ledger records it.
JOIN_WORDING_VERSION = "2026-12"

# The owner's basis for adding someone (the page's double opt-in is "consent").
BASES = ("consent", "legitimate-interests", "contract", "existing-member")


def record(
    session: Session, member: GroupMember, kind: str, source: str, ip: str | None = None, detail: str = ""
) -> None:
    """Append one event to the member's consent ledger (never updated or deleted)."""
    session.add(
        GroupConsentEvent(
            member_id=member.id,
            kind=kind,
            source=source,
            wording_version=JOIN_WORDING_VERSION,
            ip=ip,
            at=utcnow(),
            detail=detail[:300],
        )
    )


def find_member(session: Session, group: Group, email: str) -> GroupMember | None:
    """``email``'s membership row of ``group`` (any state), ignoring the local part's case."""
    return session.scalar(
        select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.email_key == email.strip().lower())
    )


def members(session: Session, group: Group, *, status: str | None = ACTIVE) -> list[GroupMember]:
    q = select(GroupMember).where(GroupMember.group_id == group.id)
    if status is not None:
        q = q.where(GroupMember.status == status)
    return list(session.scalars(q.order_by(GroupMember.email_key)))


def _check_mode(mode: str) -> str:
    if mode not in DELIVERY_MODES:
        raise InvalidInput("delivery", f"must be one of {', '.join(DELIVERY_MODES)}.")
    return mode


@dataclass(frozen=True)
class Added:
    email: str
    outcome: str  # added, reactivated, already, suppressed


def add_members(
    session: Session,
    group: Group,
    emails: list[str],
    *,
    basis: str,
    role: str = MEMBER,
    delivery: str = EVERY,
    source: str = "cli",
    by: str = "",
) -> list[Added]:
    """Add ``emails`` to ``group`` as an owner does, with ``basis`` recorded for each.

    Every address is checked first: one invalid address raises :class:`InvalidInput` and
    nothing is added. A suppressed address is reported and left out (suppression wins);
    an active member keeps their membership (their role changes if ``role`` is higher).
    """
    if basis not in BASES:
        raise InvalidInput("basis", f"must be one of {', '.join(BASES)}.")
    if role not in ROLES:
        raise InvalidInput("role", f"must be one of {', '.join(ROLES)}.")
    _check_mode(delivery)
    addresses = list(dict.fromkeys(email_address("email", e) for e in emails))
    out = []
    for address in addresses:
        if suppression.is_suppressed(session, address):
            out.append(Added(address, "suppressed"))
            continue
        member = find_member(session, group, address)
        if member is not None and member.status == ACTIVE:
            if ROLES.index(role) > ROLES.index(member.role):
                member.role = role
                record(session, member, "role", source, detail=f"role={role} by={by}")
            out.append(Added(address, "already"))
            continue
        outcome = "reactivated" if member is not None else "added"
        if member is None:
            member = GroupMember(group_id=group.id, email=address, email_key=address.lower())
            session.add(member)
        member.status, member.role, member.delivery, member.basis = ACTIVE, role, delivery, basis
        member.joined_at, member.left_at = utcnow(), None
        session.flush()
        record(session, member, "added", source, detail=f"basis={basis} role={role} by={by}")
        out.append(Added(address, outcome))
    return out


def remove_members(session: Session, group: Group, emails: list[str], *, source: str = "cli", by: str = "") -> dict:
    """Remove ``emails`` from ``group``: address -> removed or "not a member"."""
    out = {}
    for email in emails:
        member = find_member(session, group, email)
        if member is None or member.status != ACTIVE:
            out[email] = "not a member"
            continue
        member.status, member.left_at = REMOVED, utcnow()
        member.token_version += 1  # their links and list headers stop acting on the group
        record(session, member, "removed", source, detail=f"by={by}")
        out[email] = "removed"
    return out


@dataclass(frozen=True)
class JoinOutcome:
    member: GroupMember
    # "confirm": mail a confirmation link; "already": the address is a member, so mail its
    # owner a note with their links instead (the page says the same either way).
    email_to_send: str


def request_join(
    session: Session,
    group: Group,
    email: str,
    *,
    name: str = "",
    delivery: str = EVERY,
    ip: str | None = None,
    source: str = "form",
) -> JoinOutcome:
    """Someone asks to join ``group`` as ``email``: a pending membership until the
    address's owner confirms by the emailed link. Anyone can type any address, so an
    active member is left as they are (their owner gets a note instead)."""
    address = email_address("email", email)
    name = clean_text("name", name, 120)
    _check_mode(delivery)
    member = find_member(session, group, address)
    if member is not None and member.status == ACTIVE:
        return JoinOutcome(member, "already")
    if member is None:
        member = GroupMember(group_id=group.id, email=address, email_key=address.lower())
        session.add(member)
    member.status, member.requested_at, member.basis = JOIN_PENDING, utcnow(), "consent"
    # Whoever they were before (an owner who left, say), the page makes a plain member.
    member.name, member.delivery, member.role = name, delivery, MEMBER
    session.flush()
    record(session, member, "requested", source, ip, detail=f"delivery={delivery}")
    return JoinOutcome(member, "confirm")


def member_from_token(
    session: Session, tokens: Tokens, purpose: str, token: str, max_age_seconds: int | None = None
) -> GroupMember:
    """The membership a group link is for, or :class:`TokenError` (forged, expired,
    replaced, wrong purpose)."""
    claims = tokens.read(purpose, token, max_age_seconds)
    member = session.get(GroupMember, claims.subscriber_id)  # the claim's id is the member's
    if member is None:
        raise TokenError("This membership no longer exists.", "revoked")
    if member.token_version != claims.version:
        raise TokenError("This link has been replaced by a newer one.", "revoked")
    return member


def confirm_join(session: Session, member: GroupMember, *, ip: str | None = None) -> bool:
    """The address's owner confirms joining; False (no change) if already a member.

    This is a fresh opt-in from the mailbox itself, so it lifts a suppression of the address.
    """
    if member.status == ACTIVE:
        return False
    if member.status != JOIN_PENDING:
        raise TokenError("This request was withdrawn. Ask to join again from the group's page.", "cancelled")
    member.status, member.joined_at, member.left_at = ACTIVE, utcnow(), None
    suppression.lift(session, member.email)
    record(session, member, "confirmed", "link", ip, detail=f"delivery={member.delivery}")
    return True


def leave(session: Session, member: GroupMember, *, source: str, ip: str | None = None) -> bool:
    """Leave the group at once (one click, or the page's button). False if not a member.
    Leaving one group stops that group's mail only; the suppression list is untouched."""
    if member.status != ACTIVE:
        return False
    member.status, member.left_at = LEFT, utcnow()
    record(session, member, "left", source, ip)
    return True


def set_delivery(session: Session, member: GroupMember, mode: str, *, ip: str | None = None, source: str = "link"):
    """Every message, a daily digest, or web only."""
    _check_mode(mode)
    if member.delivery == mode:
        return False
    member.delivery = mode
    record(session, member, "delivery", source, ip, detail=f"delivery={mode}")
    return True


def memberships_of(session: Session, email: str) -> list[GroupMember]:
    """Every active membership of ``email`` (any letter case), by group name: what one
    person sees on their preference page."""
    return list(
        session.scalars(
            select(GroupMember)
            .join(Group, Group.id == GroupMember.group_id)
            .where(GroupMember.email_key == email.strip().lower(), GroupMember.status == ACTIVE)
            .order_by(Group.name, Group.id)
        )
    )


def is_moderator(member: GroupMember | None) -> bool:
    return member is not None and member.status == ACTIVE and member.role in ("moderator", "owner")


def moderators(session: Session, group: Group) -> list[GroupMember]:
    """The group's active owners and moderators (who are told of held posts)."""
    return [m for m in members(session, group) if is_moderator(m)]


def set_role(session: Session, member: GroupMember, role: str, *, source: str = "console", by: str = "") -> bool:
    """Make an active member a plain member, a moderator or an owner. False if unchanged."""
    if role not in ROLES:
        raise InvalidInput("role", f"must be one of {', '.join(ROLES)}.")
    if member.status != ACTIVE:
        raise InvalidInput("role", "only an active member has a role; add them first.")
    if member.role == role:
        return False
    member.role = role
    record(session, member, "role", source, detail=f"role={role} by={by}")
    return True
