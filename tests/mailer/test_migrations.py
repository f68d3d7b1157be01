"""Migration 3 keeps existing subscribers and gives them sensible defaults."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from mailer.schema import upgrade
from tests.conftest import BOTH_DIALECTS


def test_existing_subscribers_survive_the_migration(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO subscribers (email, name, organisation, status, token_version, created_at) "
                "VALUES ('a@example.org', 'A', 'Org', 'pending', 1, '2026-01-01 10:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO consent_events (subscriber_id, kind, source, wording_version, at) "
                "VALUES (1, 'subscribed', 'form', '2026-11', '2026-01-01 10:00:00')"
            )
        )
    upgrade(url)
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT email, organisation_type, practice_code, consent_basis, requested_at, "
                "paused_until FROM subscribers"
            )
        ).one()
        detail = conn.execute(text("SELECT detail FROM consent_events")).scalar()
    engine.dispose()
    assert row.email == "a@example.org"
    assert (row.organisation_type, row.practice_code, row.consent_basis) == ("", "", "consent")
    assert str(row.requested_at).startswith("2026-01-01") and row.paused_until is None
    assert detail == ""


def test_pending_request_migration_keeps_rows_and_reverses(tmp_path):
    from alembic import command

    from mailer.schema import alembic_config

    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url, "7_keyed_suppression", suppression_keys=(b"k" * 32,))
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO subscribers (email, name, organisation, status, token_version, created_at) "
                "VALUES ('a@example.org', 'A', 'Org', 'pending', 1, '2026-01-01 10:00:00')"
            )
        )
    upgrade(url, "8_pending_subscription")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT name, pending_request FROM subscribers")).one() == ("A", None)
    command.downgrade(alembic_config(url), "7_keyed_suppression")
    with engine.begin() as conn:
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(subscribers)"))]
        assert "pending_request" not in columns
        assert conn.execute(text("SELECT name FROM subscribers")).scalar() == "A"
    engine.dispose()


def test_keyed_suppression_migration_rekeys_known_addresses(tmp_path):
    """Migration 7: entries (and bounce records) of addresses the database still holds are
    re-keyed; an erased person's entry keeps its old hash and still matches, and is re-keyed
    when the address comes by; downgrade restores the unkeyed hashes of known addresses."""
    import hashlib

    from mailer.db import Database
    from mailer.schema import downgrade
    from subscribers import suppression

    def unkeyed(a):
        return hashlib.sha256(b"ertg-suppression:" + a.encode()).hexdigest()

    keys = (b"k" * 32,)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "6_delivery_engine")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO subscribers (email, name, organisation, organisation_type, practice_code, "
                "status, consent_basis, token_version, created_at) VALUES ('left@example.org', '', '', "
                "'', '', 'unsubscribed', 'consent', 1, '2026-01-01 10:00:00')"
            )
        )
        for address, reason in (("left@example.org", "unsubscribed"), ("erased@example.org", "erased")):
            conn.execute(
                text(
                    "INSERT INTO suppressions (email_hash, reason, source, created_at) "
                    "VALUES (:h, :r, 'test', '2026-01-01 10:00:00')"
                ),
                {"h": unkeyed(address), "r": reason},
            )
        conn.execute(
            text(
                "INSERT INTO bounces (email_hash, kind, detail, received_at) "
                "VALUES (:h, 'soft', '', '2026-01-01 10:00:00')"
            ),
            {"h": unkeyed("left@example.org")},
        )
    upgrade(url, suppression_keys=keys)
    with engine.begin() as conn:
        hashes = set(conn.execute(text("SELECT email_hash FROM suppressions")).scalars())
        bounce = conn.execute(text("SELECT email_hash FROM bounces")).scalar()
    left = suppression.email_hash("left@example.org", keys[0])
    assert hashes == {left, unkeyed("erased@example.org")} and bounce == left

    db = Database(url, info={"suppression_keys": keys})
    with db.transaction() as s:
        assert suppression.is_suppressed(s, "left@example.org")
        assert suppression.is_suppressed(s, "Erased@example.org")  # matched, and re-keyed now
    with engine.begin() as conn:
        hashes = set(conn.execute(text("SELECT email_hash FROM suppressions")).scalars())
    assert hashes == {left, suppression.email_hash("erased@example.org", keys[0])}
    db.dispose()

    downgrade(url, "6_delivery_engine", suppression_keys=keys)
    with engine.begin() as conn:
        hashes = set(conn.execute(text("SELECT email_hash FROM suppressions")).scalars())
        bounce = conn.execute(text("SELECT email_hash FROM bounces")).scalar()
    engine.dispose()
    assert unkeyed("left@example.org") in hashes and bounce == unkeyed("left@example.org")


@BOTH_DIALECTS
def test_the_whole_chain_downgrades_to_nothing_and_upgrades_to_the_models(rt, database_url, settings):
    """Every migration reverses on both databases, and the head is what the models declare.
    (The run's database, emptied by ``rt``, is left migrated and empty.)"""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    import mailer.models  # noqa: F401  (every table on Base.metadata)
    from mailer.db import Base
    from mailer.schema import downgrade, include_object

    keys = settings.suppression_keys
    engine = create_engine(database_url)
    try:
        downgrade(database_url, "base", suppression_keys=keys)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade(database_url, suppression_keys=keys)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        upgrade(database_url, suppression_keys=keys)  # whatever happened, leave it at the head
        engine.dispose()
