"""The settings page (admins): every effective setting, secrets never shown."""

from __future__ import annotations

import dataclasses

import pytest

from mailer.settings import Settings
from mailer.settings.display import HIDDEN, effective
from mailer.staff.permissions import ROLE_PERMISSIONS, ROLES, SETTINGS_VIEW
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures)


def test_secrets_are_masked_and_everything_else_is_shown():
    s = Settings.from_env(
        {
            "MAILER_ENV": "test",
            "SECRET_KEY": "the-secret-key-value",
            "SECRET_KEY_FALLBACKS": "old-key-one,old-key-two",
            "SUPPRESSION_KEY": "the-suppression-key",
            "METRICS_TOKEN": "the-metrics-token-value",
            "SMTP_URL": "smtp://mailer:relay-password@relay.example.org:587?starttls=1",
            "DATABASE_URL": "postgresql+psycopg://app:db-password@db.example.org/mailer",
        }
    )
    rows = dict(effective(s))
    text = repr(rows)
    for secret in ("the-secret-key-value", "old-key-one", "the-suppression-key", "the-metrics-token-value"):
        assert secret not in text
    assert "relay-password" not in text and "db-password" not in text
    assert rows["secret_key"] == HIDDEN and rows["secret_key_fallbacks"] == "2 hidden"
    assert rows["smtp_url"] == "smtp://mailer:****@relay.example.org:587?starttls=1"
    assert rows["database_url"] == "postgresql+psycopg://app:****@db.example.org/mailer"
    assert rows["metrics_token"] == HIDDEN and rows["delivery.batch_size"] == "400"
    assert rows["console_idle_minutes"] == "30"


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_see_the_settings(app, staff, clock, settings, role):  # noqa: F811
    client = app.test_client()
    log_in(client, staff[role], clock)
    r = client.get("/admin/settings")
    allowed = SETTINGS_VIEW in ROLE_PERMISSIONS[role]
    assert r.status_code == (200 if allowed else 403)
    if allowed:
        assert settings.secret_key not in r.text and "base_url" in r.text and HIDDEN in r.text
        assert "file outbox (embedded mode)" in r.text
    assert ('href="/admin/settings"' in client.get("/admin/").text) == allowed


def test_a_dkim_key_is_never_shown(settings):
    rows = dict(
        effective(dataclasses.replace(settings, delivery=dataclasses.replace(settings.delivery, dkim_key=b"PEM")))
    )
    assert rows["delivery.dkim_key"] == HIDDEN
