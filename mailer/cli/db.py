"""``mailer db``: the database schema."""

from __future__ import annotations

import click

from mailer import runtime


@click.group("db")
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.schema import upgrade

    settings = runtime.current().settings
    upgrade(settings.database_url, revision, suppression_keys=settings.suppression_keys, totp_keys=settings.totp_keys)
    click.echo(f"Database is at revision {revision}.")
