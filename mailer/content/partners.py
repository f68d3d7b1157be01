"""Partner submission links: a random secret per partner, of which only a hash is stored."""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Partner


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def rotate_submit_secret(partner: Partner) -> str:
    """Give ``partner`` a new submission secret and return it; the old link stops working.

    The secret is shown once: only its SHA-256 is stored, so a leaked database does not
    leak working links.
    """
    secret = secrets.token_urlsafe(24)
    partner.submit_token_hash = _hash(secret)
    return secret


def partner_for_secret(session: Session, secret: str) -> Partner | None:
    """The active partner whose submission link carries ``secret``, else None."""
    if not secret or len(secret) > 100:
        return None
    return session.scalar(
        select(Partner).where(Partner.submit_token_hash == _hash(secret), Partner.active)
    )
