"""Request limits for the partner routes and the preview page (web edge only).

One counter store per app (:mod:`mailer.counters`), shared with the subscriber pages:
Redis with ``REDIS_URL``, so every web process counts together; else this process. Keys
name what is counted: ``partner-submit:<id>``, ``receipt-to:<hash>``,
``preview-link:<hash>``, ``preview-to:<hash>``. Addresses and tokens are never keys
themselves, only a keyed hash of them, so the counter store holds no address or working
link.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app

from mailer.counters import CounterStore, Verdict, counters_from_url
from mailer.runtime import current as rt

HOUR = 3600
# Request-limit windows in Redis sit under this prefix, apart from the delivery counters.
PREFIX = "ertg:rl:"


def limiter() -> CounterStore:
    """The app's request counters, made on first use (tests put their own, with a clock,
    under the same name)."""
    ext = current_app.extensions
    if "subscribers.limiter" not in ext:
        ext["subscribers.limiter"] = counters_from_url(rt().settings.redis_url, PREFIX)
    return ext["subscribers.limiter"]


def retry_after_header(verdict: Verdict) -> dict[str, str]:
    """The ``Retry-After`` header (RFC 9110, delay in seconds) for a refused request; every
    web route that limits clients answers with it."""
    return {"Retry-After": str(max(1, verdict.retry_after))}


def keyed(value: str) -> str:
    """A short keyed hash of ``value`` (a token, or an address the caller casefolded, as
    addresses match ignoring case) to count it under.

    Keyed with ``SECRET_KEY``: whoever can read the counter store cannot test a guessed
    address against it.
    """
    digest = hmac.new(rt().settings.secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()
    return digest[:32]


def wait_for(*counts: tuple[str, int]) -> int:
    """Count one request against each ``(key, limit per hour)``; 0 if every one allows it,
    else the seconds until all of those refusing it allow it again.

    Every key is counted even when an earlier one refuses, so a flood spends its allowance
    on each of them.
    """
    lim = limiter()
    waits = [lim.check(key, limit, HOUR).retry_after for key, limit in counts]
    return max(waits, default=0)


def retry_after_text(seconds: int) -> str:
    """``seconds`` as people say it ("about 40 minutes", "about a minute")."""
    minutes = max(1, round(seconds / 60))
    if minutes == 1:
        return "about a minute"
    if minutes < 60:
        return f"about {minutes} minutes"
    return "about an hour"
