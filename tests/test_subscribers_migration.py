"""Migration 3 keeps existing subscribers and gives them sensible defaults."""
from __future__ import annotations

from sqlalchemy import create_engine, text

from mailer.schema import upgrade


def test_existing_subscribers_survive_the_migration(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO subscribers (email, name, organisation, status, token_version, created_at) "
                          "VALUES ('a@example.org', 'A', 'Org', 'pending', 1, '2026-01-01 10:00:00')"))
        conn.execute(text("INSERT INTO consent_events (subscriber_id, kind, source, wording_version, at) "
                          "VALUES (1, 'subscribed', 'form', '2026-11', '2026-01-01 10:00:00')"))
    upgrade(url)
    with engine.begin() as conn:
        row = conn.execute(text("SELECT email, organisation_type, practice_code, consent_basis, requested_at, "
                                "paused_until FROM subscribers")).one()
        detail = conn.execute(text("SELECT detail FROM consent_events")).scalar()
    engine.dispose()
    assert row.email == "a@example.org"
    assert (row.organisation_type, row.practice_code, row.consent_basis) == ("", "", "consent")
    assert str(row.requested_at).startswith("2026-01-01") and row.paused_until is None
    assert detail == ""


def test_pending_request_migration_keeps_rows_and_reverses(tmp_path):
    from mailer.schema import alembic_config
    from alembic import command

    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url, "6_delivery_engine")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO subscribers (email, name, organisation, status, token_version, created_at) "
                          "VALUES ('a@example.org', 'A', 'Org', 'pending', 1, '2026-01-01 10:00:00')"))
    upgrade(url, "8_pending_subscription")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT name, pending_request FROM subscribers")).one() == ("A", None)
    command.downgrade(alembic_config(url), "6_delivery_engine")
    with engine.begin() as conn:
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(subscribers)"))]
        assert "pending_request" not in columns
        assert conn.execute(text("SELECT name FROM subscribers")).scalar() == "A"
    engine.dispose()
