"""Small helpers every blueprint uses."""

from __future__ import annotations

from flask import request


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
