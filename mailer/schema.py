"""Schema migrations through Alembic, without an alembic.ini on disk."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

MIGRATIONS = Path(__file__).parent / "migrations"

# Database objects made by migrations that the models do not declare (they differ per
# dialect): the groups' full-text search index (mailer.groups.search). Comparisons of the
# models with the database (autogenerate, the migrations test) leave them out.
UNMODELLED_TABLE_PREFIXES = ("group_posts_fts",)  # SQLite FTS5 and its shadow tables
UNMODELLED_INDEXES = ("ix_group_posts_fts",)  # PostgreSQL's GIN index over to_tsvector
# Modelled, but alembic cannot compare it: PostgreSQL reflects its expression re-bracketed
# and cast. A test of the search's plan checks instead that model and migration agree.
UNCOMPARED_INDEXES = ("ix_subscribers_search_text",)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's ``include_object`` hook: everything but the unmodelled objects."""
    if type_ == "table" and name and name.startswith(UNMODELLED_TABLE_PREFIXES):
        return False
    return not (type_ == "index" and name in UNMODELLED_INDEXES + UNCOMPARED_INDEXES)


def alembic_config(database_url: str, suppression_keys=None, totp_keys=None) -> Config:
    cfg = Config()
    if suppression_keys is not None:  # migration 7 re-keys the suppression hashes with them
        cfg.attributes["suppression_keys"] = tuple(suppression_keys)
    if totp_keys is not None:  # migration c11_people encrypts staff TOTP secrets with them
        cfg.attributes["totp_keys"] = tuple(totp_keys)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head", suppression_keys=None, totp_keys=None) -> None:
    """Bring the database at ``database_url`` to ``revision`` (default: the newest).

    ``suppression_keys`` and ``totp_keys`` (the settings' properties of those names) key
    the suppression hashes and encrypt staff TOTP secrets; without them, a migration that
    needs them reads the environment's settings.
    """
    command.upgrade(alembic_config(database_url, suppression_keys, totp_keys), revision)


def downgrade(database_url: str, revision: str, suppression_keys=None, totp_keys=None) -> None:
    """Take the database at ``database_url`` back to ``revision``."""
    command.downgrade(alembic_config(database_url, suppression_keys, totp_keys), revision)


def revision(database_url: str, message: str) -> None:
    """Autogenerate a migration from the difference between models and the database."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)


def reset(database_url: str) -> None:
    """Empty a scratch database and migrate it to the newest revision.

    For tests and benchmarks only: on PostgreSQL the ``public`` schema is dropped with
    everything in it. A SQLite file is expected to be new (a fresh temporary path).
    """
    if database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(database_url)
