"""What the subscriber pages and the preference centre share: tokens, the consent ledger's
client address, the mail-sending limits, the catalogue, and the pages for refused links
and input."""

from __future__ import annotations

from flask import render_template, url_for
from sqlalchemy import select

from mailer.content.models import Partner, Topic
from mailer.counters import Verdict
from mailer.groups.service import memberships_of
from mailer.runtime import current as rt
from mailer.validation import InvalidInput
from mailer.web.helpers import client_ip
from mailer.web.limits import limiter, retry_after_header
from mailer.web.subscribers.forms import ButtonForm, delivery_form
from subscribers import service
from subscribers.suppression import email_hash
from subscribers.tokens import TokenError, Tokens

HOUR = 3600
# Links that can never work again answer 410 Gone; a malformed one 400.
LINK_ERROR_STATUS = {"expired": 410, "revoked": 410, "cancelled": 410}


def tokens() -> Tokens:
    s = rt().settings
    return Tokens(s.secret_key, s.secret_key_fallbacks)


def consent_ip() -> str | None:
    """The client's address for the consent ledger, when the operator records it."""
    return client_ip() if rt().settings.consent_log_ip else None


def allowed(address: str) -> tuple[Verdict, bool]:
    """(the client's verdict, address within its limit) for one mail-sending request.

    The address is counted whether or not we know it, so the limit reveals nothing.
    """
    s = rt().settings
    client = limiter().check(f"client:{client_ip()}", s.rate_per_client, HOUR)
    address_ok = limiter().hit(f"address:{email_hash(address)}", s.rate_per_address, HOUR)
    return client, address_ok


def too_many(verdict: Verdict):
    """The 429 page, saying when to come back."""
    minutes = max(1, -(-verdict.retry_after // 60))
    wait = "a minute" if minutes == 1 else f"{minutes} minutes"
    return (
        render_template(
            "error.html",
            title="Too many requests",
            message=f"We have had too many requests from your connection. Please try again in {wait}.",
        ),
        429,
        retry_after_header(verdict),
    )


def catalogue(session):
    """(topics in their order, active partners by name): the choices a subscriber has."""
    topics = list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))
    partners = list(session.scalars(select(Partner).where(Partner.active).order_by(Partner.name)))
    return topics, partners


def group_rows(session, email: str, posted: dict | None = None) -> list[dict]:
    """Every group ``email`` is a member of, for the preference page: the group, the
    membership, its own signed link (the forms post there, so each change is authorised
    by that membership's token) and its delivery form (``posted``: member id -> the form
    just sent, shown as sent, with its errors)."""
    rows = []
    for m in memberships_of(session, email):
        token = tokens().make("group-manage", m.id, m.token_version)
        form = (posted or {}).get(m.id) or delivery_form(m)
        rows.append({"member": m, "group": m.group, "token": token, "form": form})
    return rows


def link_error(err: TokenError, purpose: str, token: str | None = None):
    """The page for a link we cannot honour. An expired manage link (``token`` given) gets
    a button that mails a fresh one to the address it was for."""
    renew = purpose == "manage" and err.kind == "expired" and token is not None
    return render_template(
        "subscribers/link_error.html",
        reason=err.reason,
        kind=err.kind,
        purpose=purpose,
        renew_url=url_for("subscribers.renew", token=token) if renew else None,
        button=ButtonForm(formdata=None) if renew else None,
        manage_days=rt().settings.manage_link_max_age_days,
    ), LINK_ERROR_STATUS.get(err.kind, 400)


def attach_error(form, err: InvalidInput) -> None:
    """Show the domain's refusal on the field it names (or above the form)."""
    field = getattr(form, err.field, None)
    if field is not None:
        field.errors = [*field.errors, err.message]
    else:
        form.form_errors.append(err.message)


def choices(s, form):
    """The form's choices, checked by the domain (raises InvalidInput before any change)."""
    return service.validate_choices(
        s,
        form.name.data,
        form.organisation.data,
        form.topics.data or [],
        form.partners.data or [],
        form.organisation_type.data,
        form.practice_code.data,
    )
