"""Configuration checks for ``mailer doctor``: what a deployment's environment gets wrong.

Each function reads the raw environment (a mapping like ``os.environ``) rather than a
:class:`mailer.settings.Settings`, because the settings refuse to load at the first bad
value and an operator wants every problem at once. Each returns :class:`mailer.health.Check`
findings with what is wrong and what to do; none raises, none prints a secret.
Production rules (``MAILER_ENV=production``) are the strict ones; in development they are
skipped, since a laptop runs with the defaults on purpose.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from email.utils import parseaddr
from urllib.parse import urlsplit

from mailer.health import FAIL, OK, SKIP, WARN, Check
from mailer.mail.dkim_key import DkimKeyError, public_key
from mailer.settings import SECRET_MIN_DISTINCT, SECRET_MIN_LENGTH, ConfigError, Settings
from mailer.settings.smtp import parse_smtp_url

DEFAULT_MAIL_FROM = "End Racism This Generation <digest@ertg.localhost>"
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
MAKE_DKIM_KEY = "openssl genrsa -out /etc/mailer/dkim-SELECTOR.pem 2048"
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def configuration_checks(e: Mapping[str, str]) -> list[Check]:
    """Every configuration finding for environment ``e``, in the order to fix them."""
    production = (e.get("MAILER_ENV") or "").strip() == "production"
    return [
        check_startup(e),
        check_environment(e),
        check_secrets(e, production),
        check_base_url(e, production),
        check_mail_from(e, production),
        check_dkim(e, production),
        check_smtp(e, production),
        check_queue_and_database(e, production),
    ]


def check_startup(e: Mapping[str, str]) -> Check:
    """``settings``: would the service start with this environment at all?"""
    try:
        Settings.from_env(e)
    except (ConfigError, ValueError) as exc:
        return Check(
            "settings",
            FAIL,
            f"the service refuses to start: {exc}",
            "Fix the setting named (README: Configuration); the checks below say more.",
        )
    return Check("settings", OK, "the service starts with this environment")


def check_environment(e: Mapping[str, str]) -> Check:
    env = (e.get("MAILER_ENV") or "").strip()
    if not env:
        return Check(
            "mailer_env",
            FAIL,
            "MAILER_ENV is not set: the service runs in development "
            "mode, with a key file under var/ and none of the production checks",
            "Set MAILER_ENV=production in the environment file.",
        )
    if env not in ("development", "production", "test"):
        return Check(
            "mailer_env",
            FAIL,
            f"MAILER_ENV is {env!r}",
            "Set MAILER_ENV to production (or development on a developer's machine).",
        )
    if env != "production":
        return Check(
            "mailer_env",
            WARN,
            f"MAILER_ENV={env}: the production checks are skipped",
            "On a server set MAILER_ENV=production.",
        )
    return Check("mailer_env", OK, "production")


def _weakness(key: str) -> str:
    if len(key) < SECRET_MIN_LENGTH:
        return f"{len(key)} characters, fewer than {SECRET_MIN_LENGTH}"
    if len(set(key)) < SECRET_MIN_DISTINCT:
        return f"only {len(set(key))} different characters (a pattern, not a random key)"
    return ""


def check_secrets(e: Mapping[str, str], production: bool) -> Check:
    """``secret_key``: SECRET_KEY, each of SECRET_KEY_FALLBACKS and SUPPRESSION_KEY are long
    and random enough to sign links nobody can forge (lengths are reported, never keys)."""
    if not production:
        return Check("secret_key", SKIP, "checked when MAILER_ENV=production")
    secret = e.get("SECRET_KEY") or ""
    if not secret:
        return Check("secret_key", FAIL, "SECRET_KEY is not set", f"Set SECRET_KEY to the output of: {MAKE_SECRET}")
    named = [("SECRET_KEY", secret)]
    fallbacks = [k for k in (e.get("SECRET_KEY_FALLBACKS") or "").split(",") if k.strip()]
    named += [(f"SECRET_KEY_FALLBACKS entry {i}", k) for i, k in enumerate(fallbacks, 1)]
    if e.get("SUPPRESSION_KEY"):
        named.append(("SUPPRESSION_KEY", e["SUPPRESSION_KEY"]))
    weak = [f"{name} has {why}" for name, key in named if (why := _weakness(key))]
    if weak:
        return Check(
            "secret_key",
            FAIL,
            "too weak to sign links in emails: " + "; ".join(weak),
            f"Replace it with the output of: {MAKE_SECRET} (rotating SECRET_KEY: put "
            "the old one in SECRET_KEY_FALLBACKS so sent links keep working).",
        )
    if secret in fallbacks:
        return Check(
            "secret_key", WARN, "SECRET_KEY_FALLBACKS repeats SECRET_KEY", "Remove it from SECRET_KEY_FALLBACKS."
        )
    return Check(
        "secret_key", OK, f"{len(secret)} characters" + (f", {len(fallbacks)} fallback(s)" if fallbacks else "")
    )


def check_base_url(e: Mapping[str, str], production: bool) -> Check:
    """``base_url``: links in emails use https and a public host name."""
    if not production:
        return Check("base_url", SKIP, "checked when MAILER_ENV=production")
    url = (e.get("BASE_URL") or "").strip()
    if not url:
        return Check(
            "base_url",
            FAIL,
            "BASE_URL is not set: links in emails would point at 127.0.0.1",
            "Set BASE_URL=https://your.public.host",
        )
    parts = urlsplit(url)
    if parts.scheme != "https":
        return Check(
            "base_url",
            FAIL,
            f"BASE_URL is {url}: links in emails carry personal tokens and must not travel in clear",
            "Serve the site over TLS (deploy/nginx.conf) and set BASE_URL=https://...",
        )
    host = (parts.hostname or "").lower()
    if _local_host(host):
        return Check(
            "base_url",
            FAIL,
            f"BASE_URL names {host}, which nobody reading an email can reach",
            "Set BASE_URL to the public address of the site.",
        )
    return Check("base_url", OK, url)


def _local_host(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local")) or not host:
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def check_mail_from(e: Mapping[str, str], production: bool) -> Check:
    """``mail_from``: the sender is a real domain's address (not the development default)."""
    address = parseaddr(e.get("MAIL_FROM") or DEFAULT_MAIL_FROM)[1]
    domain = address.rpartition("@")[2].lower()
    if "@" not in address or not domain:
        return Check(
            "mail_from",
            FAIL,
            f"MAIL_FROM has no address: {e.get('MAIL_FROM')!r}",
            "Set MAIL_FROM='Name <digest@your-domain>'.",
        )
    if not production:
        return Check("mail_from", SKIP, "checked when MAILER_ENV=production")
    if _local_host(domain) or "." not in domain:
        return Check(
            "mail_from",
            FAIL,
            f"MAIL_FROM's domain {domain} is not a public domain; receivers reject such mail",
            "Set MAIL_FROM to an address at the campaign's domain, then publish its records (mailer dns-records).",
        )
    return Check("mail_from", OK, address)


def aligned(a: str, b: str) -> bool:
    """Relaxed DMARC alignment, approximately: one domain is the other or a subdomain of it
    (the public suffix list would be exact; this never calls unrelated domains aligned)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def check_dkim(e: Mapping[str, str], production: bool) -> Check:
    """``dkim``: the key file is readable, an RSA key of 2048 bits (1024 at the least), its
    selector is a DNS name, and its domain aligns with MAIL_FROM's for DMARC."""
    key_file, selector = e.get("DKIM_PRIVATE_KEY_FILE") or "", (e.get("DKIM_SELECTOR") or "").strip()
    sender = parseaddr(e.get("MAIL_FROM") or DEFAULT_MAIL_FROM)[1].rpartition("@")[2].lower()
    domain = (e.get("DKIM_DOMAIN") or sender).strip().lower()
    how = (
        f"Make a key ({MAKE_DKIM_KEY}), set DKIM_PRIVATE_KEY_FILE and DKIM_SELECTOR, and "
        "publish the record `mailer dns-records` prints."
    )
    if not key_file:
        if selector:
            return Check("dkim", WARN, "DKIM_SELECTOR is set but DKIM_PRIVATE_KEY_FILE is not: nothing is signed", how)
        if production:
            return Check(
                "dkim",
                WARN,
                "no DKIM key: messages leave unsigned, and large mailbox "
                "providers (Gmail, Yahoo, Microsoft) require DKIM from bulk senders; fine "
                "only if your relay signs for your domain",
                how,
            )
        return Check("dkim", SKIP, "no DKIM key configured")
    try:
        with open(key_file, "rb") as fh:
            key = public_key(fh.read())
    except OSError as exc:
        return Check(
            "dkim",
            FAIL,
            f"cannot read DKIM_PRIVATE_KEY_FILE: {exc.strerror} ({key_file})",
            "Check the path and that the service's user may read the file (owner mailer, mode 0600).",
        )
    except DkimKeyError as exc:
        return Check(
            "dkim",
            FAIL,
            f"DKIM_PRIVATE_KEY_FILE {key_file}: {exc}",
            f"Point it at an RSA key in PEM form ({MAKE_DKIM_KEY}).",
        )
    if not selector:
        return Check(
            "dkim",
            FAIL,
            "DKIM_PRIVATE_KEY_FILE is set but DKIM_SELECTOR is not",
            "Set DKIM_SELECTOR to the name the key is published under (e.g. mail2026).",
        )
    if not all(_LABEL.match(label) for label in selector.split(".")):
        return Check(
            "dkim",
            FAIL,
            f"DKIM_SELECTOR {selector!r} is not a DNS name",
            "Use letters, digits and hyphens (e.g. mail2026).",
        )
    if key.bits < 1024:
        return Check(
            "dkim",
            FAIL,
            f"the DKIM key has {key.bits} bits; receivers ignore keys under 1024",
            f"Make a 2048-bit key: {MAKE_DKIM_KEY}",
        )
    if not aligned(domain, sender):
        return Check(
            "dkim",
            FAIL,
            f"DKIM_DOMAIN {domain} does not align with MAIL_FROM's domain {sender}: DMARC ignores the signature",
            "Sign with MAIL_FROM's domain (unset DKIM_DOMAIN) or a subdomain of it.",
        )
    found = f"{key.bits}-bit RSA key, selector {selector}, d={domain}"
    mode = _mode(key_file)
    if mode is not None and mode & 0o004:
        return Check("dkim", WARN, f"{found}; the key file is readable by every user", f"chmod 600 {key_file}")
    if key.bits < 2048:
        return Check(
            "dkim",
            WARN,
            f"{found}; 1024-bit keys are being retired",
            f"Rotate to a 2048-bit key under a new selector ({MAKE_DKIM_KEY}).",
        )
    return Check("dkim", OK, found)


def _mode(path: str) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def check_smtp(e: Mapping[str, str], production: bool) -> Check:
    """``smtp``: production hands mail to a relay, over TLS when it logs in or leaves the
    machine, with certificate checks on."""
    url = e.get("SMTP_URL") or ""
    if not url:
        if production:
            return Check(
                "smtp",
                FAIL,
                "SMTP_URL is not set: emails are written to OUTBOX_DIR as files and never delivered",
                "Set SMTP_URL to the relay (smtps://user:pass@host:465 or smtp://user:pass@host:587?starttls=1).",
            )
        return Check("smtp", SKIP, "no relay: emails go to the file outbox")
    try:
        relay = parse_smtp_url(url)
    except ValueError as exc:
        return Check("smtp", FAIL, str(exc), "Correct SMTP_URL (README: Configuration).")
    tls, host = relay.tls, relay.host.lower()
    where = f"{host}:{relay.port}"
    if tls and not relay.verify:
        return Check(
            "smtp",
            FAIL if production else WARN,
            "SMTP_URL turns certificate checks off (?verify=0): anyone on the path can read the mail and the password",
            "Remove ?verify=0; for a private CA add ?cafile=PATH.",
        )
    if not tls and not _loopback(host):
        return Check(
            "smtp",
            WARN,
            f"mail travels to {where} unencrypted",
            "Use the relay's TLS (smtps:// or ?starttls=1) unless it is on a private network.",
        )
    return Check("smtp", OK, f"{where}" + (" with TLS" if tls else " (this machine)"))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_queue_and_database(e: Mapping[str, str], production: bool) -> Check:
    """``services``: production shares PostgreSQL and Redis between its processes."""
    if not production:
        return Check("services", SKIP, "checked when MAILER_ENV=production")
    database = e.get("DATABASE_URL") or ""
    if not database or database.startswith("sqlite"):
        return Check(
            "services",
            WARN,
            "DATABASE_URL is SQLite: one machine only, and web and workers queue behind one writer",
            "Use PostgreSQL: DATABASE_URL=postgresql+psycopg://USER:PASSWORD@HOST/DB",
        )
    if not e.get("REDIS_URL"):
        return Check(
            "services",
            WARN,
            "REDIS_URL is not set: every web process works the queue "
            "in its own threads, and `mailer worker` on other machines sees nothing",
            "Set REDIS_URL=redis://HOST:6379/0 (with appendonly yes).",
        )
    return Check("services", OK, "PostgreSQL and Redis")
