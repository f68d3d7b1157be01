"""One settings object, read once from the environment.

Web, worker and scheduler processes all call :func:`get_settings`; tests build their own
:class:`Settings` with :meth:`Settings.from_env` and an explicit mapping.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from mailer.delivery.config import DeliveryConfig


class ConfigError(RuntimeError):
    """The environment holds a setting the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    env: str
    var_dir: Path
    database_url: str
    redis_url: str | None
    smtp_url: str | None
    outbox_dir: Path
    base_url: str
    secret_key: str
    secret_key_fallbacks: tuple[str, ...]
    mail_from: str
    postal_address: str
    digest_schedule: str
    schedule_timezone: str
    worker_threads: int
    confirm_max_age_days: int = 7
    purge_unconfirmed_days: int = 30
    consent_log_ip: bool = True
    # "email me my link" / subscribe requests allowed per hour, per address and per client
    rate_per_address: int = 3
    rate_per_client: int = 20
    # Partner routes, per hour: items one partner may submit (form and API together), and
    # receipts one contact address may be sent. Preview page: test sends per link and per
    # target address.
    partner_submissions_per_hour: int = 30
    partner_receipts_per_hour: int = 10
    preview_sends_per_link: int = 10
    preview_sends_per_address: int = 3
    batch_size: int = 100
    # Partner feeds: refuse private/loopback/link-local addresses unless this is on.
    feed_allow_private: bool = False
    feed_timeout: float = 10.0
    feed_max_bytes: int = 2_000_000
    extra: dict = field(default_factory=dict)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def sender_domain(self) -> str:
        return parseaddr(self.mail_from)[1].rpartition("@")[2] or "localhost"

    @property
    def unsubscribe_mailto(self) -> str:
        return f"unsubscribe@{self.sender_domain}"

    @property
    def list_id(self) -> str:
        return f"digest.{self.sender_domain}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read every setting from ``environ`` (default ``os.environ``).

        Raises :class:`ConfigError` for a setting that cannot work, such as a missing
        ``SECRET_KEY`` outside development.
        """
        e = os.environ if environ is None else environ
        env = e.get("MAILER_ENV", "development")
        if env not in ("development", "production", "test"):
            raise ConfigError(f"MAILER_ENV must be development, production or test, not {env!r}")
        var_dir = Path(e.get("VAR_DIR", "var")).resolve()
        base_url = e.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("BASE_URL must start with http:// or https://")
        secret = e.get("SECRET_KEY") or ""
        if not secret:
            if env == "production":
                raise ConfigError("SECRET_KEY is required when MAILER_ENV=production")
            secret = _development_secret(var_dir)
        threads = int(e.get("WORKER_THREADS", "2"))
        if threads < 1:
            raise ConfigError("WORKER_THREADS must be at least 1")
        return cls(
            env=env,
            var_dir=var_dir,
            database_url=e.get("DATABASE_URL") or f"sqlite:///{var_dir / 'mailer.db'}",
            redis_url=e.get("REDIS_URL") or None,
            smtp_url=e.get("SMTP_URL") or None,
            outbox_dir=Path(e.get("OUTBOX_DIR") or var_dir / "outbox").resolve(),
            base_url=base_url,
            secret_key=secret,
            secret_key_fallbacks=tuple(
                k for k in (e.get("SECRET_KEY_FALLBACKS") or "").split(",") if k.strip()
            ),
            mail_from=e.get(
                "MAIL_FROM", "End Racism This Generation <digest@ertg.localhost>"
            ),
            postal_address=e.get(
                "POSTAL_ADDRESS", "End Racism This Generation, c/o Campaign Office, London, UK"
            ),
            digest_schedule=e.get("DIGEST_SCHEDULE", "day=1st tue,hour=9,minute=0"),
            schedule_timezone=e.get("SCHEDULE_TIMEZONE", "Europe/London"),
            worker_threads=threads,
            feed_allow_private=e.get("FEED_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes", "on"),
            feed_timeout=float(e.get("FEED_TIMEOUT", "10")),
            feed_max_bytes=int(e.get("FEED_MAX_BYTES", "2000000")),
            **_subscriber_settings(e),
            delivery=DeliveryConfig.from_env(e),
        )


def _positive_int(e: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(e.get(name) or default)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


def _subscriber_settings(e: Mapping[str, str]) -> dict:
    """Settings of the subscription lifecycle (issue 3) and the limits on pages that take
    a stranger's input or send email (issue 9)."""
    return dict(
        confirm_max_age_days=_positive_int(e, "CONFIRM_MAX_AGE_DAYS", 7),
        purge_unconfirmed_days=_positive_int(e, "PURGE_UNCONFIRMED_AFTER_DAYS", 30),
        consent_log_ip=(e.get("CONSENT_LOG_IP") or "1").lower() not in ("0", "false", "no", "off"),
        rate_per_address=_positive_int(e, "RATE_LIMIT_PER_ADDRESS", 3),
        rate_per_client=_positive_int(e, "RATE_LIMIT_PER_CLIENT", 20),
        partner_submissions_per_hour=_positive_int(e, "PARTNER_SUBMISSIONS_PER_HOUR", 30),
        partner_receipts_per_hour=_positive_int(e, "PARTNER_RECEIPTS_PER_HOUR", 10),
        preview_sends_per_link=_positive_int(e, "PREVIEW_SENDS_PER_LINK", 10),
        preview_sends_per_address=_positive_int(e, "PREVIEW_SENDS_PER_ADDRESS", 3),
    )


def _development_secret(var_dir: Path) -> str:
    """A random key kept under ``var/`` so development links survive a restart."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
