"""The suppression list: addresses that must not be mailed, stored only as hashes.

An entry is added on unsubscribe, hard bounce, complaint and erasure, and lifted only when
the person confirms a fresh subscription (double opt-in). Digests, imports and any admin
action check it; a suppressed address is never mailed on anyone else's say-so.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscribers.models import SUPPRESSION_REASONS, Suppression

_PREFIX = b"ertg-suppression:"


def email_hash(address: str) -> str:
    """The hash stored for ``address`` (a normalised address; case is folded here)."""
    return hashlib.sha256(_PREFIX + address.strip().casefold().encode("utf-8")).hexdigest()


def suppress(session: Session, address: str, reason: str, source: str = "") -> None:
    """Put ``address`` on the list (or update why it is there)."""
    if reason not in SUPPRESSION_REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    h = email_hash(address)
    row = session.scalar(select(Suppression).where(Suppression.email_hash == h))
    if row is None:
        session.add(Suppression(email_hash=h, reason=reason, source=source))
    else:
        row.reason, row.source = reason, source
    session.flush()


def suppression_for(session: Session, address: str) -> Suppression | None:
    return session.scalar(select(Suppression).where(Suppression.email_hash == email_hash(address)))


def is_suppressed(session: Session, address: str) -> bool:
    """True if ``address`` must not be mailed (every sender outside double opt-in asks this)."""
    return suppression_for(session, address) is not None


def lift(session: Session, address: str) -> None:
    """Remove ``address`` from the list: only after the person confirmed a fresh opt-in."""
    session.execute(delete(Suppression).where(Suppression.email_hash == email_hash(address)))


def all_hashes(session: Session) -> set[str]:
    """Every suppressed hash (one query; fine for hundreds of thousands of entries)."""
    return set(session.scalars(select(Suppression.email_hash)))


def hashes_among(session: Session, hashes) -> set[str]:
    """Which of ``hashes`` are on the list, in one query."""
    hashes = list(hashes)
    if not hashes:
        return set()
    return set(session.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))))
