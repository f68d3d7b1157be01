"""Partner records and their two kinds of secret: the submission link and API tokens.

Both are random secrets of which only a SHA-256 is stored, so a leaked database leaks no
working link or token. They are independent: rotating or revoking the link leaves the
tokens alone, and the other way round.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.intake import item_link
from mailer.content.models import ApiToken, Partner
from mailer.db import utcnow
from mailer.validation import InvalidInput, clean_text, email_address

TOKEN_PREFIX = "ertg_"
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- submission links -------------------------------------------------------------------


def rotate_submit_secret(partner: Partner) -> str:
    """Give ``partner`` a new submission secret and return it; the old link stops working.

    The secret is shown once: only its SHA-256 is stored.
    """
    secret = secrets.token_urlsafe(24)
    partner.submit_token_hash = _hash(secret)
    return secret


def revoke_submit_secret(partner: Partner) -> None:
    """Switch the partner's submission link off until a new one is issued."""
    partner.submit_token_hash = None


def partner_for_secret(session: Session, secret: str) -> Partner | None:
    """The active partner whose submission link carries ``secret``, else None."""
    if not secret or len(secret) > 100:
        return None
    return session.scalar(select(Partner).where(Partner.submit_token_hash == _hash(secret), Partner.active))


# --- API tokens -------------------------------------------------------------------------


def issue_api_token(session: Session, partner: Partner, label: str = "") -> tuple[ApiToken, str]:
    """A new API token for ``partner``; returns the row and the token (shown once)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        partner_id=partner.id, token_hash=_hash(token), prefix=token[:12], label=clean_text("label", label, 120)
    )
    session.add(row)
    session.flush()
    return row, token


def revoke_api_token(session: Session, token_id: int) -> ApiToken | None:
    """Revoke one token (idempotent). None if there is no such token."""
    row = session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def partner_for_api_token(session: Session, token: str) -> Partner | None:
    """The active partner owning the live ``token``, else None. Records when it was used."""
    if not token or len(token) > 200 or not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token), ApiToken.revoked_at.is_(None)))
    if row is None or not row.partner.active:
        return None
    row.last_used_at = utcnow()
    return row.partner


# --- partner records --------------------------------------------------------------------


@dataclass
class PartnerFields:
    """Editable partner details; ``None`` means "leave as it is"."""

    name: str | None = None
    website: str | None = None
    description: str | None = None
    logo_url: str | None = None
    contact_email: str | None = None
    feed_url: str | None = None
    trusted: bool | None = None
    active: bool | None = None


def _optional_link(field_name: str, value: str) -> str | None:
    return item_link(field_name, value) if value.strip() else None


def apply_partner_fields(partner: Partner, f: PartnerFields) -> Partner:
    """Check and copy ``f`` onto ``partner``. InvalidInput names the first bad field."""
    if f.name is not None:
        name = clean_text("name", f.name, 160)
        if not name:
            raise InvalidInput("name", "is required.")
        partner.name = name
    if f.website is not None:
        partner.website = _optional_link("website", f.website)
    if f.description is not None:
        partner.description = clean_text("description", f.description, 500)
    if f.logo_url is not None:
        partner.logo_url = _optional_link("logo_url", f.logo_url)
    if f.contact_email is not None:
        partner.contact_email = email_address("contact_email", f.contact_email, required=False)
    if f.feed_url is not None:
        new = _optional_link("feed_url", f.feed_url)
        if new != partner.feed_url:  # a new feed starts afresh
            partner.feed_url, partner.feed_etag, partner.feed_modified = new, None, None
            partner.feed_error = None
    if f.trusted is not None:
        partner.trusted = f.trusted
    if f.active is not None:
        partner.active = f.active
    return partner


def create_partner(session: Session, slug: str, fields: PartnerFields) -> Partner:
    """A new partner with ``slug`` (lower-case words joined by hyphens)."""
    if not _SLUG.match(slug or "") or len(slug) > 60:
        raise InvalidInput("slug", "use lower-case letters, digits and hyphens, like race-equality-foundation.")
    if session.scalar(select(Partner.id).where(Partner.slug == slug)) is not None:
        raise InvalidInput("slug", f"a partner called {slug!r} already exists.")
    partner = Partner(slug=slug, name="", active=True, trusted=False, description="")
    apply_partner_fields(partner, fields)
    if not partner.name:
        raise InvalidInput("name", "is required.")
    session.add(partner)
    session.flush()
    return partner


def partner_by_slug(session: Session, slug: str) -> Partner | None:
    return session.scalar(select(Partner).where(Partner.slug == slug))


def all_partners(session: Session) -> list[Partner]:
    """Every partner, by slug."""
    return list(session.scalars(select(Partner).order_by(Partner.slug)))


def api_tokens_of(session: Session, partner: Partner) -> list[ApiToken]:
    """``partner``'s API tokens, live and revoked, oldest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.partner_id == partner.id).order_by(ApiToken.id)))
