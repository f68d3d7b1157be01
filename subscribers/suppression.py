"""The suppression list: addresses that must not be mailed, stored only as keyed hashes.

An entry is added on unsubscribe, hard bounce, complaint and erasure, and lifted only when
the person confirms a fresh subscription (double opt-in). Digests, imports and any admin
action check it; a suppressed address is never mailed on anyone else's say-so.

The hash is an HMAC under the suppression key (``SUPPRESSION_KEY``, else one derived from
``SECRET_KEY``), so someone holding only the database cannot test whether an address is
on the list. The keys travel with the session (``session.info["suppression_keys"]``, set
by the runtime from the settings): the first key writes, every key matches, so entries
made under an older ``SECRET_KEY`` (now in ``SECRET_KEY_FALLBACKS``) still count. Entries
from before migration ``7_keyed_suppression`` whose address was not known then still hold
the old unkeyed hash; it matches too, and an entry is re-keyed when its address comes by.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.db import among, core
from subscribers.models import SUPPRESSION_REASONS, Suppression

_PREFIX = b"ertg-suppression:"


def _normal(address: str) -> bytes:
    return address.strip().casefold().encode("utf-8")


def email_hash(address: str, key: bytes | None = None) -> str:
    """The hash of ``address`` (case folded here) under ``key``; without a key, the unkeyed
    hash of earlier releases (still fine as a short-lived rate-limit key)."""
    if key is None:
        return hashlib.sha256(_PREFIX + _normal(address)).hexdigest()
    return hmac.digest(key, _PREFIX + _normal(address), "sha256").hex()


def session_keys(session: Session) -> tuple[bytes, ...]:
    """The suppression keys this session was opened with, newest first."""
    keys = session.info.get("suppression_keys")
    if not keys:
        raise RuntimeError(
            "this session carries no suppression keys: open it from a Database "
            "built by mailer.runtime (or pass info={'suppression_keys': ...})"
        )
    return keys


def hashes_of(session: Session, address: str) -> list[str]:
    """Every hash ``address`` may be stored under: the current one first, then those under
    older keys, then the unkeyed one."""
    return [email_hash(address, k) for k in session_keys(session)] + [email_hash(address)]


def current_hash(session: Session, address: str) -> str:
    """The hash a new entry (or bounce record) for ``address`` is written under."""
    return email_hash(address, session_keys(session)[0])


def _entry(session: Session, address: str) -> Suppression | None:
    """``address``'s entry, re-keyed to the current key if it was under another."""
    hashes = hashes_of(session, address)
    row = session.scalar(select(Suppression).where(Suppression.email_hash.in_(hashes)).limit(1))
    if row is not None and row.email_hash != hashes[0]:
        row.email_hash = hashes[0]
        session.flush()
    return row


def suppress(session: Session, address: str, reason: str, source: str = "") -> None:
    """Put ``address`` on the list (or update why it is there)."""
    if reason not in SUPPRESSION_REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    row = _entry(session, address)
    if row is None:
        session.add(Suppression(email_hash=current_hash(session, address), reason=reason, source=source))
    else:
        row.reason, row.source = reason, source
    session.flush()


def suppression_for(session: Session, address: str) -> Suppression | None:
    return _entry(session, address)


def is_suppressed(session: Session, address: str) -> bool:
    """True if ``address`` must not be mailed (every sender outside double opt-in asks this)."""
    return suppression_for(session, address) is not None


def lift(session: Session, address: str) -> None:
    """Remove ``address`` from the list: only after the person confirmed a fresh opt-in."""
    session.execute(delete(Suppression).where(Suppression.email_hash.in_(hashes_of(session, address))))


class SuppressedSet:
    """The whole list in memory (one query), for checking many addresses: imports, the
    audience of an edition. ``address in suppressed_set`` tries each of its hashes."""

    def __init__(self, session: Session):
        self._keys = session_keys(session)
        self._hashes = set(session.scalars(select(Suppression.email_hash)))

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def __contains__(self, address: str) -> bool:
        if not self._hashes:
            return False
        return any(email_hash(address, k) in self._hashes for k in self._keys) or email_hash(address) in self._hashes


def suppressed_among(session: Session, addresses: Iterable[str]) -> set[str]:
    """Which of ``addresses`` are on the list, in one query."""
    by_hash: dict[str, str] = {}
    for address in addresses:
        for h in hashes_of(session, address):
            by_hash[h] = address
    if not by_hash:
        return set()
    q = select(Suppression.email_hash).where(among(session, Suppression.email_hash, by_hash))
    return {by_hash[h] for h in core(session).execute(q).scalars()}
