"""``mailer doctor``: check the configuration and every service, say what to fix.

It runs without the app (a plain click command, so Flask never builds it) and from the raw
environment, so a configuration the service refuses still gets a full report. It touches
the services only to look: a ``SELECT`` and the schema's revision, a Redis PING, an EHLO,
the relay's TLS and login.
"""

from __future__ import annotations

import os
import sys

import click

from mailer.cli._common import fail
from mailer.db import Database
from mailer.settings import ConfigError, Settings

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}
DOCTOR_TIMEOUT = 5.0


def run_checks(environ) -> list:
    """Configuration checks, then the services the environment names."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.config_checks import configuration_checks
    from mailer.health import dependency_checks

    checks = configuration_checks(environ)
    try:
        settings = Settings.from_env(environ)
    except (ConfigError, ValueError):  # already reported by the settings check
        settings = None
    database_url = settings.database_url if settings else environ.get("DATABASE_URL")
    redis_url = settings.redis_url if settings else environ.get("REDIS_URL")
    smtp_url = settings.smtp_url if settings else None  # an unusable URL is reported above
    engine = None
    if database_url:
        engine = Database(database_url).engine
    try:
        checks += dependency_checks(engine, redis_url, smtp_url, DOCTOR_TIMEOUT)
    finally:
        if engine is not None:
            engine.dispose()
    if smtp_url:
        # loaded when the command runs, so `mailer --help` stays fast
        from mailer.health import check_relay_tls

        checks.append(check_relay_tls(smtp_url, DOCTOR_TIMEOUT))
    return checks


@click.command("doctor")
def doctor() -> None:
    """Check configuration, database, migrations, Redis and the relay; print what to fix."""
    try:
        checks = run_checks(os.environ)
    except Exception as exc:  # a bug here must still leave the operator a message
        fail(f"doctor could not finish: {exc}")
    width = max(len(c.name) for c in checks)
    for check in checks:
        click.echo(f"{_MARK[check.status]:<4}  {check.name:<{width}}  {check.detail}")
        if check.fix and check.status in ("warn", "fail"):
            click.echo(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if failed:
        click.echo(f"\n{failed} problem(s) to fix, {warned} warning(s).")
        sys.exit(1)
    click.echo(f"\nNo problems found, {warned} warning(s).")
