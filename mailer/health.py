"""Is this process ready to serve? Checks of the services it depends on.

One set of checks serves ``/readyz`` (``mailer.web.health``) and ``mailer doctor``
(``mailer.cli.doctor``): the database answers, its schema is at this release's newest
migration, Redis answers when ``REDIS_URL`` is set, the SMTP relay greets us when
``SMTP_URL`` is set. Each check returns a :class:`Check`; none raises.

Contract for callers that answer probes: :func:`readiness` returns within ``timeout``
seconds (plus a few milliseconds) whatever the services do, because the checks run side by
side and a check still running at the deadline is reported as failed (its thread finishes
on its own). A ``Check``'s ``detail`` may name hosts and error messages, never a person:
the web view therefore publishes only ``ok``/``error`` per check, and logs the detail.

This module knows nothing of subscribers, editions or deliveries.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache

import redis
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from mailer.mail.transport import SMTPTransport

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

# Probes come every few seconds; a dependency slower than this is as good as down.
READY_TIMEOUT = 2.0


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` is OK, WARN (works, but worth a look), FAIL or SKIP (does
    not apply); ``detail`` says what was found, ``fix`` what to do about a WARN or FAIL."""

    name: str
    status: str
    detail: str = ""
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _error(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text_}" if text_ else type(exc).__name__


@lru_cache(maxsize=1)
def migration_heads() -> tuple[str, ...]:
    """The newest revision(s) this release's migrations define (read once per process)."""
    # alembic (and mailer.schema with it) loads only when a probe runs, not in every web process
    from alembic.script import ScriptDirectory

    from mailer.schema import MIGRATIONS

    return tuple(sorted(ScriptDirectory(str(MIGRATIONS)).get_heads()))


def _current_heads(conn) -> list[str]:
    """The revisions the database is at (none if it was never migrated)."""
    if not inspect(conn).has_table("alembic_version"):
        return []
    return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def check_database(engine: Engine) -> list[Check]:
    """Two checks over one connection: ``database`` (a ``SELECT 1`` answers) and
    ``migrations`` (the schema is at :func:`migration_heads`)."""
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            ms = (time.monotonic() - started) * 1000
            # Read alembic's own table directly: alembic's MigrationContext logs two INFO
            # lines per call, which a probe every few seconds would fill the log with.
            current = tuple(sorted(_current_heads(conn)))
    except Exception as exc:  # any driver error means the same to an operator: unreachable
        return [
            Check(
                "database",
                FAIL,
                f"cannot reach the database ({engine.url.get_backend_name()}): {_error(exc)}",
                "Check DATABASE_URL, that the database server runs and accepts this machine's connections.",
            ),
            Check("migrations", FAIL, "not checked: the database is unreachable"),
        ]
    database = Check("database", OK, f"{engine.url.get_backend_name()} answered in {ms:.0f} ms")
    heads = migration_heads()
    if current == heads:
        return [database, Check("migrations", OK, f"at {', '.join(heads)}")]
    if not current:
        found = "the database has no schema"
    elif set(current) - _known_revisions():
        found = (
            f"the database is at {', '.join(current)}, which this release does not know (a newer release migrated it)"
        )
        return [
            database,
            Check(
                "migrations",
                FAIL,
                found,
                "Run this release's newest version everywhere, or restore the "
                "database from before the newer release's upgrade.",
            ),
        ]
    else:
        found = f"the database is at {', '.join(current)}"
    return [
        database,
        Check(
            "migrations",
            FAIL,
            f"{found}; this release needs {', '.join(heads)}",
            "Run `mailer db upgrade` (once, from one machine), then restart.",
        ),
    ]


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    # alembic (and mailer.schema with it) loads only when a probe runs, not in every web process
    from alembic.script import ScriptDirectory

    from mailer.schema import MIGRATIONS

    return frozenset(s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions())


def check_redis(url: str, timeout: float = READY_TIMEOUT) -> Check:
    """``redis``: a PING on a fresh connection answers within ``timeout`` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception as exc:
        return Check(
            "redis",
            FAIL,
            f"cannot reach Redis: {_error(exc)}",
            "Check REDIS_URL and that redis-server runs and accepts this machine.",
        )
    finally:
        client.close()
    return Check("redis", OK, "answered PING")


def check_relay(url: str, timeout: float = READY_TIMEOUT) -> Check:
    """``relay``: the SMTP relay at ``url`` (an ``SMTP_URL``) accepts a connection and
    answers EHLO within ``timeout`` seconds (TLS from the start for ``smtps://``; STARTTLS
    and logging in are left to :func:`check_relay_tls`, which ``mailer doctor`` runs)."""
    relay = SMTPTransport(url)
    where = f"{relay.host}:{relay.port}"
    try:
        conn = _connect(relay, min(timeout, relay.timeout))
        try:
            code, _ = conn.ehlo()
        finally:
            _quit(conn)
    except (OSError, smtplib.SMTPException) as exc:
        return Check(
            "relay",
            FAIL,
            f"cannot reach the relay at {where}: {_error(exc)}",
            "Check SMTP_URL's host and port and that the relay accepts this machine.",
        )
    if code != 250:
        return Check(
            "relay",
            FAIL,
            f"the relay at {where} answered EHLO with {code}",
            "Ask the relay's operator to accept this machine.",
        )
    return Check("relay", OK, f"{where} answered EHLO")


def check_relay_tls(url: str, timeout: float = 10.0) -> Check:
    """``relay_tls``: what the relay does with our credentials: TLS (SMTPS or STARTTLS)
    with a certificate that verifies, then the login. Without credentials or TLS in the
    URL there is nothing to check (SKIP)."""
    relay = SMTPTransport(url)
    where = f"{relay.host}:{relay.port}"
    if not (relay.ssl or relay.starttls or relay.username):
        return Check("relay_tls", SKIP, "no credentials and no TLS in SMTP_URL")
    try:
        conn = _connect(relay, timeout)
    except (OSError, smtplib.SMTPException) as exc:
        return Check(
            "relay_tls",
            FAIL,
            f"no TLS connection to {where}: {_error(exc)}",
            "A certificate that does not verify needs the relay's CA: add ?cafile=PATH "
            "to SMTP_URL. Check the port: 465 is smtps://, 587 is ?starttls=1.",
        )
    try:
        if relay.starttls:
            conn.ehlo()
            if not conn.has_extn("starttls"):
                return Check(
                    "relay_tls",
                    FAIL,
                    f"{where} does not offer STARTTLS",
                    "Use the relay's TLS port (smtps://HOST:465) or ask its operator to enable STARTTLS.",
                )
            try:
                conn.starttls(context=relay.tls)
            except (OSError, smtplib.SMTPException) as exc:
                return Check(
                    "relay_tls",
                    FAIL,
                    f"STARTTLS with {where} failed: {_error(exc)}",
                    "A certificate that does not verify needs the relay's CA: add ?cafile=PATH to SMTP_URL.",
                )
        conn.ehlo()
        if relay.username:
            try:
                conn.login(relay.username, relay.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                return Check(
                    "relay_tls",
                    FAIL,
                    f"{where} refused the user name or password ({exc.smtp_code})",
                    "Correct the credentials in SMTP_URL (percent-encode special characters).",
                )
            except smtplib.SMTPException as exc:
                return Check(
                    "relay_tls",
                    FAIL,
                    f"logging in to {where} failed: {_error(exc)}",
                    "Check that the relay offers AUTH on this port.",
                )
    except (OSError, smtplib.SMTPException) as exc:
        return Check("relay_tls", FAIL, f"{where}: {_error(exc)}", "Check SMTP_URL's host and port.")
    finally:
        _quit(conn)
    verified = relay.tls.verify_mode != 0
    done = "TLS" + (" with a verified certificate" if verified else " WITHOUT certificate checks")
    if relay.username:
        done += ", logged in"
    return Check(
        "relay_tls",
        OK if verified else WARN,
        f"{where}: {done}",
        "" if verified else "Remove ?verify=0 from SMTP_URL (use ?cafile=PATH for a private CA).",
    )


def _connect(relay, timeout: float) -> smtplib.SMTP:
    if relay.ssl:
        return smtplib.SMTP_SSL(relay.host, relay.port, timeout=timeout, context=relay.tls)
    return smtplib.SMTP(relay.host, relay.port, timeout=timeout)


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def dependency_checks(
    database: Engine | None, redis_url: str | None, smtp_url: str | None, timeout: float = READY_TIMEOUT
) -> list[Check]:
    """The readiness checks, run side by side, back within ``timeout`` seconds: database
    and migrations (when an engine is given), Redis and relay (when their URLs are set)."""
    jobs: list[tuple[tuple[str, ...], Callable[[], list[Check]]]] = []
    if database is not None:
        jobs.append((("database", "migrations"), lambda: check_database(database)))
    if redis_url:
        jobs.append((("redis",), lambda: [check_redis(redis_url, timeout)]))
    if smtp_url:
        jobs.append((("relay",), lambda: [check_relay(smtp_url, timeout)]))
    pool = ThreadPoolExecutor(max_workers=max(1, len(jobs)), thread_name_prefix="readiness")
    try:
        futures = [(names, pool.submit(job)) for names, job in jobs]
        wait([f for _, f in futures], timeout=timeout)
        checks: list[Check] = []
        for names, future in futures:
            if future.done() and future.exception() is not None:  # a bug, not an outage
                checks += [Check(n, FAIL, f"the check itself failed: {_error(future.exception())}") for n in names]
            elif future.done():
                checks += future.result()
            else:  # left running: its own timeouts end it; the probe cannot wait
                checks += [
                    Check(
                        n, FAIL, f"no answer within {timeout:g} s", "Look at that service's load and the network to it."
                    )
                    for n in names
                ]
        return checks
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def readiness(settings, engine: Engine, timeout: float = READY_TIMEOUT) -> list[Check]:
    """:func:`dependency_checks` for a process running with ``settings`` (a
    :class:`mailer.settings.Settings`) over ``engine``."""
    return dependency_checks(engine, settings.redis_url, settings.smtp_url, timeout)
