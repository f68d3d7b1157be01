"""Small helpers every blueprint uses."""

from __future__ import annotations

from flask import request


def client_ip() -> str | None:
    """The client's address: the TCP peer, or, behind ``TRUSTED_PROXIES`` proxies, the
    address the outermost trusted proxy saw (ProxyFix in :mod:`mailer.app` rewrites
    ``remote_addr``). Rate limits and the consent ledger key on this."""
    return request.remote_addr
