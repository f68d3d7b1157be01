"""Signed links and settings: units with no database."""
from __future__ import annotations

import time

import pytest

from mailer.settings import ConfigError, Settings
from subscribers.tokens import TokenError, Tokens


def test_token_round_trip_and_purpose_scoping():
    t = Tokens("k1")
    token = t.make("manage", 42, 3)
    claims = t.read("manage", token)
    assert (claims.subscriber_id, claims.version) == (42, 3)
    with pytest.raises(TokenError):
        t.read("unsubscribe", token)


def test_tampered_and_foreign_key_tokens_are_refused():
    token = Tokens("k1").make("unsubscribe", 1, 1)
    with pytest.raises(TokenError, match="not valid"):
        Tokens("k1").read("unsubscribe", token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(TokenError):
        Tokens("another-key").read("unsubscribe", token)


def test_old_key_still_verifies_after_rotation():
    old = Tokens("old-key").make("unsubscribe", 7, 1)
    rotated = Tokens("new-key", fallbacks=("old-key",))
    assert rotated.read("unsubscribe", old).subscriber_id == 7


def test_expired_token_says_so():
    token = Tokens("k").make("confirm", 1, 1)
    time.sleep(1.1)
    with pytest.raises(TokenError, match="expired"):
        Tokens("k").read("confirm", token, max_age_seconds=0)


def test_production_requires_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"MAILER_ENV": "production", "VAR_DIR": str(tmp_path)})


def test_embedded_defaults(tmp_path):
    s = Settings.from_env({"VAR_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'mailer.db'}"
    assert s.redis_url is None and s.smtp_url is None
    assert s.outbox_dir == tmp_path / "outbox"
    # The development key is kept, so links survive a restart.
    assert Settings.from_env({"VAR_DIR": str(tmp_path)}).secret_key == s.secret_key


def test_bad_base_url_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="BASE_URL"):
        Settings.from_env({"VAR_DIR": str(tmp_path), "BASE_URL": "digest.example.org"})


def test_development_base_url_follows_port(tmp_path):
    """`PORT=5077 ./scripts/dev` serves on 5077, so its links must point there too."""
    assert Settings.from_env({"VAR_DIR": str(tmp_path)}).base_url == "http://127.0.0.1:5000"
    assert Settings.from_env({"VAR_DIR": str(tmp_path), "PORT": "5077"}).base_url == "http://127.0.0.1:5077"
    explicit = {"VAR_DIR": str(tmp_path), "PORT": "5077", "BASE_URL": "https://digest.example.org/"}
    assert Settings.from_env(explicit).base_url == "https://digest.example.org"
    with pytest.raises(ConfigError, match="PORT"):
        Settings.from_env({"VAR_DIR": str(tmp_path), "PORT": "http"})


def test_scheduler_defaults_to_first_tuesday_at_nine_london():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from scheduler import parse_cron

    trigger = parse_cron("day=1st tue,hour=9,minute=0", "Europe/London")
    london = ZoneInfo("Europe/London")
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 26, tzinfo=london))
    assert fire == datetime(2026, 12, 1, 9, 0, tzinfo=london)  # 1 December 2026 is a Tuesday
    fire = trigger.get_next_fire_time(None, datetime(2027, 6, 2, tzinfo=london))
    assert (fire.month, fire.day, fire.hour, fire.utcoffset().total_seconds()) == (7, 6, 9, 3600)
