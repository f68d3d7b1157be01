"""``SMTP_URL``: what it may say, and what it says.

Settings refuse a bad URL when they are read; the SMTP transport, ``mailer doctor`` and the
readiness probe read the same parsed form, so the three never disagree about a URL.

Forms: ``smtp://host:25``, ``smtp://user:pass@host:587?starttls=1``,
``smtps://user:pass@host:465``; ``?timeout=SECONDS`` (default 30), ``?cafile=PATH`` (trust
a private CA), ``?verify=0`` (no certificate checks: testing only).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

_YES = ("1", "true", "yes")
_NO = ("0", "false", "no")


@dataclass(frozen=True)
class SmtpRelay:
    """An ``SMTP_URL`` taken apart (user name and password percent-decoded)."""

    host: str
    port: int
    ssl: bool  # smtps://: TLS from the first byte
    starttls: bool
    timeout: float
    cafile: str | None
    verify: bool
    username: str | None
    password: str | None

    @property
    def tls(self) -> bool:
        return self.ssl or self.starttls


def parse_smtp_url(url: str) -> SmtpRelay:
    """``url`` taken apart, or ``ValueError`` saying what is wrong with it as an ``SMTP_URL``:
    not smtp:// or smtps://, or credentials that would cross the network without TLS."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[0].lower() in _YES
    if (parts.username or parts.password) and parts.scheme != "smtps" and not starttls:
        raise ValueError(
            "SMTP_URL has a user name or password but no TLS: use smtps:// or add "
            "?starttls=1, so the credentials are never sent in clear"
        )
    try:
        timeout = float(query.get("timeout", ["30"])[0])
    except ValueError:
        raise ValueError("SMTP_URL's ?timeout= must be a number of seconds") from None
    return SmtpRelay(
        host=parts.hostname or "localhost",
        port=parts.port or (465 if parts.scheme == "smtps" else 25),
        ssl=parts.scheme == "smtps",
        starttls=starttls,
        timeout=timeout,
        cafile=query.get("cafile", [None])[0],
        verify=query.get("verify", ["1"])[0].lower() not in _NO,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
