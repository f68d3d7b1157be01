"""Settings of groups (mailing lists): the list domain, how long a held post waits, what
the moderation chain holds, and the DMARC From rewrite.

Read from the same environment as :class:`mailer.settings.Settings` (which holds one of
these as ``settings.groups``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Big free-mail providers publish p=reject or p=quarantine, or may at any time: mail "from"
# their users that we relay would fail DMARC, so From is rewritten for them whatever DNS says.
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "ymail.com",
    "aol.com",
    "aol.co.uk",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "live.com",
    "live.co.uk",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "mail.com",
)


class GroupConfigError(ValueError):
    """A group setting that cannot work."""


def _int(e: Mapping[str, str], name: str, default: int) -> int:
    raw = (e.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise GroupConfigError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class GroupConfig:
    # Groups live at slug@list_domain; "" means the domain of MAIL_FROM.
    list_domain: str = ""
    hold_days: int = 7  # a held post not decided within this many days expires
    max_recipients: int = 25  # addresses in To and Cc beyond which a post is held
    dmarc_rewrite_domains: tuple[str, ...] = FREE_MAIL_DOMAINS
    dmarc_timeout: float = 3.0  # seconds for one DMARC lookup
    # Attachments bigger than this are listed in the archive but their bytes are not kept.
    archive_attachment_max_bytes: int = 5_000_000
    # The hour (SCHEDULE_TIMEZONE) daily-digest members get the day before's digest.
    digest_hour: int = 7

    @classmethod
    def from_env(cls, e: Mapping[str, str]) -> GroupConfig:
        domain = (e.get("LIST_DOMAIN") or "").strip().lower().rstrip(".")
        if domain and ("@" in domain or " " in domain or "." not in domain):
            raise GroupConfigError(f"LIST_DOMAIN must be a domain name such as lists.example.org, not {domain!r}")
        raw_domains = e.get("DMARC_REWRITE_DOMAINS")
        domains = (
            FREE_MAIL_DOMAINS
            if raw_domains is None
            else tuple(d.strip().lower() for d in raw_domains.split(",") if d.strip())
        )
        raw_timeout = (e.get("DMARC_TIMEOUT") or "3").strip()
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise GroupConfigError(f"DMARC_TIMEOUT must be a number of seconds, not {raw_timeout!r}") from None
        if not 0 < timeout <= 30:
            raise GroupConfigError("DMARC_TIMEOUT must be more than 0 and at most 30 seconds")
        raw_hour = (e.get("GROUP_DIGEST_HOUR") or "7").strip()
        if not raw_hour.isdigit() or int(raw_hour) > 23:
            raise GroupConfigError(f"GROUP_DIGEST_HOUR must be an hour from 0 to 23, not {raw_hour!r}")
        return cls(
            list_domain=domain,
            hold_days=_int(e, "GROUP_HOLD_DAYS", 7),
            max_recipients=_int(e, "GROUP_MAX_RECIPIENTS", 25),
            dmarc_rewrite_domains=domains,
            dmarc_timeout=timeout,
            archive_attachment_max_bytes=_int(e, "GROUP_ARCHIVE_ATTACHMENT_MAX_BYTES", 5_000_000),
            digest_hour=int(raw_hour),
        )
