"""Small helpers every blueprint uses."""

from __future__ import annotations

from flask import request

from mailer.validation import InvalidInput


def client_ip() -> str | None:
    """The client's address: the TCP peer, or, behind ``TRUSTED_PROXIES`` proxies, the
    address the outermost trusted proxy saw (ProxyFix in :mod:`mailer.app` rewrites
    ``remote_addr``). Rate limits and the consent ledger key on this."""
    return request.remote_addr


def page_number() -> int:
    """The ``page`` query argument of a paged list: 1 when missing, not a positive whole
    number, or seven digits or more (no list here has a million pages, and a huge offset
    must not reach the database)."""
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) < 7 and int(raw) > 0 else 1


def error_on(form, err: InvalidInput, renamed: dict[str, str] | None = None) -> None:
    """Show a domain error on the form field it names (``renamed``: the domain's field name
    -> the form's, where they differ), or above the form, naming the field, when the form
    has no such field."""
    field = getattr(form, (renamed or {}).get(err.field, err.field), None)
    if field is None:
        form.form_errors.append(f"{err.field}: {err.message}")
    else:
        field.errors = [*field.errors, err.message]
