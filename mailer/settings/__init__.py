"""One settings object, read once from the environment: the foundation every layer reads.

This package imports nothing of the service but :mod:`mailer.files`: the delivery settings
(:mod:`.delivery`) and the meaning of ``SMTP_URL`` (:mod:`.smtp`) live here too, so the
domain and the email mechanics read their configuration from below.

:meth:`Settings.from_env` reads every variable (README's configuration table lists them);
a process does so once, when its runtime is assembled at start-up, and everything it runs
is handed that one object. Tests build their own with an explicit mapping.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path

from mailer.files import private_dir, write_private
from mailer.settings.delivery import DeliveryConfig
from mailer.settings.groups import GroupConfig
from mailer.settings.smtp import parse_smtp_url

log = logging.getLogger(__name__)

# A production SECRET_KEY signs every link in every email: it must not be guessable.
SECRET_MIN_LENGTH = 32
SECRET_MIN_DISTINCT = 10  # "aaaa..." or "1234123412341234..." is long but not secret


class ConfigError(RuntimeError):
    """The environment holds a setting the service cannot run with."""


@dataclass(frozen=True)
class PasswordHashing:
    """The Argon2id cost of staff password hashes. The defaults are argon2-cffi's (RFC 9106's
    low-memory choice) and they are the floor: :class:`Settings` refuses anything cheaper
    unless ``MAILER_ENV=test``, so only a test suite can make hashing fast. No environment
    variable sets it; tests inject it with ``dataclasses.replace``."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4

    def cheaper_than(self, other: PasswordHashing) -> bool:
        return (
            self.time_cost < other.time_cost
            or self.memory_kib < other.memory_kib
            or self.parallelism < other.parallelism
        )


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
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto we believe (0: none).
    trusted_proxies: int = 0
    # How long a manage link opens the preference centre (unsubscribe links never expire).
    manage_link_max_age_days: int = 90
    # Partner routes, per hour: items one partner may submit (form and API together), and
    # receipts one contact address may be sent. Preview page: test sends per link and per
    # target address.
    partner_submissions_per_hour: int = 30
    partner_receipts_per_hour: int = 10
    preview_sends_per_link: int = 10
    preview_sends_per_address: int = 3
    # Partner feeds: refuse private/loopback/link-local addresses unless this is on.
    feed_allow_private: bool = False
    feed_timeout: float = 10.0
    feed_max_bytes: int = 2_000_000
    # Reply-To of digests and partner notices (the editors); None: replies go to MAIL_FROM.
    reply_to: str | None = None
    # Keys the suppression list's hashes (see subscribers.suppression); empty: from SECRET_KEY.
    suppression_key: str = ""
    # The scheduler: minutes between partner feed polls; how late a missed run may still
    # run (past it, the miss is recorded and shown instead); a maildir of bounce reports
    # to process on a schedule (None: bounces come only through `mailer bounces process`).
    feed_poll_minutes: int = 60
    schedule_grace_hours: int = 24
    bounce_source: Path | None = None
    # Largest message the LMTP receiver accepts (larger: 552 per recipient).
    inbound_max_bytes: int = 10_000_000
    # Logs and metrics (issue 13): text or JSON lines; who may read /metrics.
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_allow: tuple = ()  # ipaddress networks
    metrics_token: str = ""
    worker_metrics: tuple[str, int] | None = None  # (host, port) of the workers' exposition
    # The editors' console: an edition changed by one person is approved by another; a
    # login lasts at most this many hours, and ends after this many idle minutes.
    require_second_approver: bool = True
    console_session_hours: int = 12
    console_idle_minutes: int = 30
    # How long the console's live pages (a send, an import) and `mailer edition send --wait`
    # wait between polls, as a share of the shipped intervals: 1 in production; tests make
    # them short.
    console_poll_scale: float = 1.0
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    groups: GroupConfig = field(default_factory=GroupConfig)
    password_hashing: PasswordHashing = field(default_factory=PasswordHashing)

    def __post_init__(self) -> None:
        if self.env != "test" and self.password_hashing.cheaper_than(PasswordHashing()):
            raise ConfigError("staff password hashing may be made cheaper than the default only in tests")

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def suppression_keys(self) -> tuple[bytes, ...]:
        """Keys of the suppression hashes, the one that writes first: ``SUPPRESSION_KEY`` if
        set, then keys derived from ``SECRET_KEY`` and each fallback, so neither setting
        an explicit key later nor rotating ``SECRET_KEY`` loses an entry."""
        keys = [self.suppression_key.encode()] if self.suppression_key else []
        for secret in (self.secret_key, *self.secret_key_fallbacks):
            keys.append(derived_key(secret, "suppression"))
        return tuple(dict.fromkeys(keys))

    @property
    def totp_keys(self) -> tuple[bytes, ...]:
        """Keys that encrypt staff TOTP secrets (see mailer.staff.twofactor), derived from
        ``SECRET_KEY`` (the one that encrypts) and each fallback (still decrypt), so a key
        rotation keeps every enrolled phone working."""
        return tuple(dict.fromkeys(derived_key(s, "totp") for s in (self.secret_key, *self.secret_key_fallbacks)))

    @property
    def sender_domain(self) -> str:
        return parseaddr(self.mail_from)[1].rpartition("@")[2] or "localhost"

    @property
    def unsubscribe_mailto(self) -> str:
        return f"unsubscribe@{self.sender_domain}"

    @property
    def list_domain(self) -> str:
        """The domain of group addresses (``slug@list_domain``): ``LIST_DOMAIN``, else
        the domain of ``MAIL_FROM``."""
        return self.groups.list_domain or self.sender_domain

    @property
    def list_id(self) -> str:
        return f"digest.{self.sender_domain}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``).

        Raises :class:`ConfigError` for a setting that cannot work, such as a missing
        ``SECRET_KEY`` outside development.
        """
        e = os.environ if environ is None else environ
        env = _environment(e)
        var_dir = Path(e.get("VAR_DIR", "var")).resolve()
        base_url = (e.get("BASE_URL") or _development_base_url(e)).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("BASE_URL must start with http:// or https://")
        fallbacks = tuple(k for k in (e.get("SECRET_KEY_FALLBACKS") or "").split(",") if k.strip())
        secret = e.get("SECRET_KEY") or ""
        if env == "production":
            _check_production(secret, fallbacks, e.get("SUPPRESSION_KEY") or "", base_url)
        if not secret:
            secret = _development_secret(var_dir)
        smtp_url = e.get("SMTP_URL") or None
        if smtp_url:
            try:
                parse_smtp_url(smtp_url)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        reply_to = (e.get("REPLY_TO") or "").strip() or None
        if reply_to and ("@" not in parseaddr(reply_to)[1] or "\n" in reply_to or "\r" in reply_to):
            raise ConfigError(f"REPLY_TO must be an email address (optionally Name <address>), not {reply_to!r}")
        threads = int(e.get("WORKER_THREADS", "2"))
        if threads < 1:
            raise ConfigError("WORKER_THREADS must be at least 1")
        return cls(
            env=env,
            var_dir=var_dir,
            database_url=e.get("DATABASE_URL") or f"sqlite:///{var_dir / 'mailer.db'}",
            redis_url=e.get("REDIS_URL") or None,
            smtp_url=smtp_url,
            outbox_dir=Path(e.get("OUTBOX_DIR") or var_dir / "outbox").resolve(),
            base_url=base_url,
            secret_key=secret,
            secret_key_fallbacks=fallbacks,
            mail_from=e.get("MAIL_FROM", "End Racism This Generation <digest@ertg.localhost>"),
            reply_to=reply_to,
            postal_address=e.get("POSTAL_ADDRESS", "End Racism This Generation, c/o Campaign Office, London, UK"),
            digest_schedule=e.get("DIGEST_SCHEDULE", "day=1st tue,hour=9,minute=0"),
            schedule_timezone=e.get("SCHEDULE_TIMEZONE", "Europe/London"),
            worker_threads=threads,
            feed_allow_private=e.get("FEED_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes", "on"),
            feed_timeout=float(e.get("FEED_TIMEOUT", "10")),
            feed_max_bytes=int(e.get("FEED_MAX_BYTES", "2000000")),
            suppression_key=e.get("SUPPRESSION_KEY") or "",
            inbound_max_bytes=_positive_int(e, "INBOUND_MAX_BYTES", 10_000_000),
            **_console_settings(e),
            **_subscriber_settings(e),
            **_schedule_settings(e),
            **_observability_settings(e),
            delivery=DeliveryConfig.from_env(e),
            groups=GroupConfig.from_env(e),
        )


def derived_key(secret: str, purpose: str) -> bytes:
    """A key for ``purpose`` derived from ``secret`` (HMAC-SHA256), independent of any other
    purpose's, so no use of the secret can be turned into another."""
    return hmac.digest(secret.encode(), f"ertg-mailer-{purpose}-key".encode(), hashlib.sha256)


def _environment(e: Mapping[str, str]) -> str:
    """``MAILER_ENV``, or development with a warning when it is unset.

    A deployment that forgot ``MAILER_ENV`` would run with a key file under ``var/`` and
    none of the production checks, so an unset ``MAILER_ENV`` beside a server database
    (anything but SQLite in ``DATABASE_URL``) is refused: only production uses one, and
    development on PostgreSQL says so with ``MAILER_ENV=development``.
    """
    env = e.get("MAILER_ENV")
    if env is None or not env.strip():
        database = e.get("DATABASE_URL") or ""
        if database and not database.startswith("sqlite"):
            raise ConfigError(
                "MAILER_ENV is not set, but DATABASE_URL names a database server, which looks "
                "like production. Set MAILER_ENV=production (or MAILER_ENV=development to "
                "develop against that database on purpose)."
            )
        log.warning(
            "MAILER_ENV is not set: running in development mode, with a secret key "
            "kept in the var/ directory and no production checks. Set MAILER_ENV=production "
            "on a server, MAILER_ENV=development to silence this."
        )
        return "development"
    if env not in ("development", "production", "test"):
        raise ConfigError(f"MAILER_ENV must be development, production or test, not {env!r}")
    return env


def _check_production(secret: str, fallbacks: tuple[str, ...], suppression_key: str, base_url: str) -> None:
    """Refuse what production cannot run with: a missing or guessable key, plain http."""
    if not secret:
        raise ConfigError(
            "SECRET_KEY is required when MAILER_ENV=production "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    named = [("SECRET_KEY", secret), *(("SECRET_KEY_FALLBACKS", k) for k in fallbacks)]
    if suppression_key:
        named.append(("SUPPRESSION_KEY", suppression_key))
    for name, key in named:
        if len(key) < SECRET_MIN_LENGTH or len(set(key)) < SECRET_MIN_DISTINCT:
            raise ConfigError(
                f"{name} is too weak for production: use at least {SECRET_MIN_LENGTH} random "
                f"characters (python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    if not base_url.startswith("https://"):
        raise ConfigError(
            f"BASE_URL must be https:// when MAILER_ENV=production, not {base_url!r}: "
            "links in emails carry personal tokens and must not travel in clear"
        )


def _development_base_url(e: Mapping[str, str]) -> str:
    """Without ``BASE_URL``, links point at the local server on ``PORT`` (default 5000),
    the port ``./scripts/dev`` and ``mailer run`` listen on."""
    port = (e.get("PORT") or "5000").strip()
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"PORT must be a port number (1-65535), not {port!r}")
    return f"http://127.0.0.1:{int(port)}"


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
        trusted_proxies=_proxy_count(e),
        manage_link_max_age_days=_positive_int(e, "MANAGE_LINK_MAX_AGE_DAYS", 90),
        partner_submissions_per_hour=_positive_int(e, "PARTNER_SUBMISSIONS_PER_HOUR", 30),
        partner_receipts_per_hour=_positive_int(e, "PARTNER_RECEIPTS_PER_HOUR", 10),
        preview_sends_per_link=_positive_int(e, "PREVIEW_SENDS_PER_LINK", 10),
        preview_sends_per_address=_positive_int(e, "PREVIEW_SENDS_PER_ADDRESS", 3),
    )


def _schedule_settings(e: Mapping[str, str]) -> dict:
    """Settings of the scheduler process (issue 13)."""
    source = (e.get("BOUNCE_SOURCE") or "").strip()
    return dict(
        feed_poll_minutes=_positive_int(e, "FEED_POLL_MINUTES", 60),
        schedule_grace_hours=_positive_int(e, "SCHEDULE_GRACE_HOURS", 24),
        bounce_source=Path(source).resolve() if source else None,
    )


def _observability_settings(e: Mapping[str, str]) -> dict:
    """LOG_FORMAT, LOG_LEVEL, METRICS_ALLOW, METRICS_TOKEN and WORKER_METRICS (see
    mailer.logs, mailer.web.metrics, mailer.metrics.workers)."""

    fmt = (e.get("LOG_FORMAT") or "text").strip().lower()
    if fmt not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, not {fmt!r}")
    level = (e.get("LOG_LEVEL") or "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}")
    networks = []
    for part in (e.get("METRICS_ALLOW") or "127.0.0.1/32,::1/128").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"METRICS_ALLOW must list networks such as 10.0.0.0/8, not {part.strip()!r}"
                ) from None
    token = (e.get("METRICS_TOKEN") or "").strip()
    if token and len(token) < 16:
        raise ConfigError("METRICS_TOKEN must be at least 16 characters (or unset)")
    worker = (e.get("WORKER_METRICS") or "").strip()
    host, _, port = worker.rpartition(":")
    if worker and not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"WORKER_METRICS must be host:port (e.g. 127.0.0.1:9191), not {worker!r}")
    return dict(
        log_format=fmt,
        log_level=level,
        metrics_allow=tuple(networks),
        metrics_token=token,
        worker_metrics=(host.strip("[]"), int(port)) if worker else None,
    )


def _console_settings(e: Mapping[str, str]) -> dict:
    """Settings of the editors' console (issue 11)."""
    return dict(
        require_second_approver=(e.get("REQUIRE_SECOND_APPROVER") or "1").lower() not in ("0", "false", "no", "off"),
        console_session_hours=_positive_int(e, "CONSOLE_SESSION_HOURS", 12),
        console_idle_minutes=_positive_int(e, "CONSOLE_IDLE_MINUTES", 30),
    )


def _proxy_count(e: Mapping[str, str]) -> int:
    """TRUSTED_PROXIES: how many proxies sit in front of the app (0 when it faces clients)."""
    raw = (e.get("TRUSTED_PROXIES") or "0").strip()
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError("TRUSTED_PROXIES must be a whole number of proxies from 0 to 10")
    return int(raw)


def _development_secret(var_dir: Path) -> str:
    """A random key kept under ``var/`` so development links survive a restart."""
    private_dir(var_dir)
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    write_private(path, key.encode())
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
