"""Signed links and settings: units with no database."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from itsdangerous import URLSafeTimedSerializer

from mailer.mail.keyed_hmac import KeyedHmac
from mailer.settings import ConfigError, Settings
from subscribers.address_tokens import AddressTokens
from subscribers.tokens import PREVIEW_SALT, PURPOSES, TokenError, Tokens


def test_token_round_trip_and_purpose_scoping():
    t = Tokens("k1")
    token = t.make("manage", 42, 3)
    claims = t.read("manage", token)
    assert (claims.subscriber_id, claims.version) == (42, 3)
    with pytest.raises(TokenError):
        t.read("unsubscribe", token)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_minted_tokens_equal_itsdangerous_tokens_and_verify(purpose):
    # Tokens.make's fast path makes exactly the tokens itsdangerous makes, so links it
    # signs verify through the normal reader, across purposes and key rotation.
    tokens = Tokens("current-key", ("old-key",))
    reference_serializer = URLSafeTimedSerializer(["old-key", "current-key"], salt=f"ertg-{purpose}")
    for sid, version in [(1, 1), (123456789, 7), (0, 0)]:
        for _ in range(3):  # retry if the clock ticked over a second between the two
            minted, reference = tokens.make(purpose, sid, version), reference_serializer.dumps([sid, version])
            if minted.split(".")[1] == reference.split(".")[1]:
                break
        assert minted == reference
        claims = tokens.read(purpose, minted)
        assert (claims.subscriber_id, claims.version) == (sid, version)


def test_minted_tokens_are_purpose_scoped_and_signed_with_the_newest_key():
    token = Tokens("new-key", ("old-key",)).make("view", 5, 1)
    with pytest.raises(TokenError):
        Tokens("new-key").read("unsubscribe", token)
    with pytest.raises(TokenError):
        Tokens("old-key").read("view", token)
    assert Tokens("new-key").read("view", token).subscriber_id == 5


def test_minting_follows_the_tokens_clock():
    tokens = Tokens("k", clock=lambda: 1_700_000_000.0)
    minted = tokens.make("manage", 3, 2)
    assert minted == tokens.serializer("ertg-manage").dumps([3, 2])
    assert Tokens("k", clock=lambda: 1_700_000_000.0 + 3600).read("manage", minted, 3600).version == 2
    with pytest.raises(TokenError, match="expired"):
        Tokens("k", clock=lambda: 1_700_000_000.0 + 3601).read("manage", minted, 3600)


def test_preview_links_keep_their_format_so_live_links_still_verify():
    # The format preview links had before Tokens signed them: live links must keep working.
    earlier = URLSafeTimedSerializer(["old-key", "new-key"], salt="ertg-edition-preview")
    assert PREVIEW_SALT == "ertg-edition-preview"
    live = earlier.dumps(["preview", 12, 3, "0a1b2c3d"])
    claims = Tokens("new-key", ("old-key",)).read_preview(live, 3600)
    assert (claims.edition_id, claims.generation) == (12, 3)
    made = Tokens("new-key").make_preview(12, 3)
    data = earlier.loads(made)
    assert data[:3] == ["preview", 12, 3] and len(data[3]) == 8
    assert made != Tokens("new-key").make_preview(12, 3)  # every link is distinct
    for foreign in (
        Tokens("new-key").make("view", 12, 3),
        earlier.dumps(["preview", "12", 3, "x"]),
        URLSafeTimedSerializer("other-key", salt=PREVIEW_SALT).dumps(["preview", 12, 3, "x"]),
    ):
        with pytest.raises(TokenError, match="not valid"):
            Tokens("new-key").read_preview(foreign, 3600)
    then = Tokens("k", clock=lambda: 1_700_000_000.0).make_preview(1, 0)
    with pytest.raises(TokenError) as err:
        Tokens("k", clock=lambda: 1_700_000_000.0 + 3601).read_preview(then, 3600)
    assert err.value.kind == "expired"


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
    now = [1_800_000_000.0]
    tokens = Tokens("k", clock=lambda: now[0])
    token = tokens.make("confirm", 1, 1)
    now[0] += 60
    assert tokens.read("confirm", token, max_age_seconds=60).subscriber_id == 1
    now[0] += 1
    with pytest.raises(TokenError, match="expired") as err:
        tokens.read("confirm", token, max_age_seconds=60)
    assert err.value.kind == "expired"
    assert tokens.read("confirm", token).subscriber_id == 1  # without a lifetime it never expires


def test_manage_link_lifetime_and_trusted_proxies_settings(tmp_path):
    s = Settings.from_env({"VAR_DIR": str(tmp_path)})
    assert (s.manage_link_max_age_days, s.trusted_proxies) == (90, 0)
    s = Settings.from_env({"VAR_DIR": str(tmp_path), "MANAGE_LINK_MAX_AGE_DAYS": "30", "TRUSTED_PROXIES": "2"})
    assert (s.manage_link_max_age_days, s.trusted_proxies) == (30, 2)
    for bad in ({"TRUSTED_PROXIES": "-1"}, {"TRUSTED_PROXIES": "yes"}, {"MANAGE_LINK_MAX_AGE_DAYS": "0"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Settings.from_env({"VAR_DIR": str(tmp_path), **bad})


def test_production_requires_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"MAILER_ENV": "production", "VAR_DIR": str(tmp_path)})


STRONG = "a9F3kQ-7xZpL0vR2sT8uW1yB4cD6eG5hJ"  # 34 characters, 33 distinct


@pytest.mark.parametrize(
    "environ, complaint",
    [
        ({"SECRET_KEY": "x", "BASE_URL": "https://digest.example.org"}, "SECRET_KEY is too weak"),
        ({"SECRET_KEY": "a" * 64, "BASE_URL": "https://digest.example.org"}, "SECRET_KEY is too weak"),
        (
            {"SECRET_KEY": STRONG, "SECRET_KEY_FALLBACKS": "old", "BASE_URL": "https://digest.example.org"},
            "SECRET_KEY_FALLBACKS is too weak",
        ),
        (
            {"SECRET_KEY": STRONG, "SUPPRESSION_KEY": "short", "BASE_URL": "https://digest.example.org"},
            "SUPPRESSION_KEY is too weak",
        ),
        ({"SECRET_KEY": STRONG, "BASE_URL": "http://digest.example.org"}, "BASE_URL must be https://"),
        ({"SECRET_KEY": STRONG}, "BASE_URL must be https://"),  # the development default
    ],
)
def test_production_refuses_a_weak_key_or_plain_http(tmp_path, environ, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env({"MAILER_ENV": "production", "VAR_DIR": str(tmp_path), **environ})
    assert not (tmp_path / "secret_key").exists()


def test_production_starts_with_a_strong_key_over_https(tmp_path):
    s = Settings.from_env(
        {
            "MAILER_ENV": "production",
            "VAR_DIR": str(tmp_path),
            "SECRET_KEY": STRONG,
            "BASE_URL": "https://digest.example.org",
        }
    )
    assert s.secret_key == STRONG and not s.development


def test_a_forgotten_mailer_env_warns_and_is_refused_beside_a_database_server(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="mailer.settings"):
        assert Settings.from_env({"VAR_DIR": str(tmp_path)}).development
    assert "MAILER_ENV is not set" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mailer.settings"):
        Settings.from_env({"VAR_DIR": str(tmp_path), "MAILER_ENV": "development"})
    assert caplog.text == ""  # said on purpose: no warning
    server = "postgresql+psycopg://mailer@db.internal/mailer"
    with pytest.raises(ConfigError, match="MAILER_ENV is not set, but DATABASE_URL"):
        Settings.from_env({"VAR_DIR": str(tmp_path), "DATABASE_URL": server})
    assert (
        Settings.from_env({"VAR_DIR": str(tmp_path), "DATABASE_URL": server, "MAILER_ENV": "development"}).database_url
        == server
    )


def test_var_database_and_outbox_are_private(tmp_path):
    """The key file, the SQLite database (and its WAL) and every email in the outbox are
    readable by the service's user only, even under a permissive umask."""
    import os
    import stat

    from sqlalchemy import text

    from mailer.db import Database
    from mailer.mail.transport import FileOutbox

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    old = os.umask(0o022)
    try:
        var = tmp_path / "var"
        s = Settings.from_env({"VAR_DIR": str(var), "MAILER_ENV": "development"})
        db = Database(s.database_url)
        with db.transaction() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        FileOutbox(s.outbox_dir).send("a@example.org", "b@example.org", b"Subject: x\r\n\r\nhi")
        assert mode(var) == 0o700 and mode(var / "secret_key") == 0o600
        assert mode(var / "mailer.db") == 0o600 and mode(var / "mailer.db-wal") == 0o600
        assert mode(s.outbox_dir) == 0o700
        [eml] = s.outbox_dir.glob("*.eml")
        assert mode(eml) == 0o600
        db.dispose()
        var.chmod(0o755)  # an older install left it open: the next start closes it
        (var / "mailer.db").chmod(0o644)
        Database(Settings.from_env({"VAR_DIR": str(var), "MAILER_ENV": "development"}).database_url).dispose()
        assert mode(var) == 0o700 and mode(var / "mailer.db") == 0o600
    finally:
        os.umask(old)


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


def test_smtp_url_is_read_once_for_settings_and_the_transport(tmp_path):
    """Settings refuse an SMTP_URL the transport could not use, with the reason; a good one
    is taken apart the same way for the transport and the doctor."""
    from mailer.settings.smtp import parse_smtp_url

    with pytest.raises(ConfigError, match=r"\?timeout= must be a number"):
        Settings.from_env({"VAR_DIR": str(tmp_path), "SMTP_URL": "smtp://relay.example:25?timeout=soon"})
    relay = parse_smtp_url("smtp://digest:s%40cret@relay.example:587?starttls=1&verify=0&timeout=5")
    assert (relay.host, relay.port, relay.tls, relay.verify, relay.timeout) == ("relay.example", 587, True, False, 5.0)
    assert (relay.username, relay.password) == ("digest", "s@cret")
    assert parse_smtp_url("smtps://relay.example").port == 465


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


def test_inbound_max_bytes_defaults_to_ten_megabytes_and_refuses_nonsense(tmp_path):
    assert Settings.from_env({"VAR_DIR": str(tmp_path)}).inbound_max_bytes == 10_000_000
    assert Settings.from_env({"VAR_DIR": str(tmp_path), "INBOUND_MAX_BYTES": "2000"}).inbound_max_bytes == 2000
    for bad in ("10MB", "0"):
        with pytest.raises(ConfigError, match="INBOUND_MAX_BYTES"):
            Settings.from_env({"VAR_DIR": str(tmp_path), "INBOUND_MAX_BYTES": bad})


@pytest.mark.parametrize("digest_name", ["sha1", "sha256"])
@pytest.mark.parametrize("key", [b"", b"short", b"k" * 64, b"a much longer key than the hash's block size " * 4])
def test_keyed_hmac_is_the_standard_hmac(key, digest_name):
    signer = KeyedHmac(key, digest_name)
    for msg in (b"", b"WzEyMyw0XQ.aE3kLQ", b"x" * 1000):
        assert signer.digest(msg) == hmac.digest(key, msg, digest_name)
        assert signer.digest(msg) == signer.digest(msg)  # the key's states are copied, never used up


def test_address_tokens_keep_their_format_so_sent_unsubscribe_addresses_still_work():
    key = hashlib.sha256(b"ertg-address-unsubscribe:" + b"the-key").digest()
    expected = "77-2-" + hmac.new(key, b"77-2", hashlib.sha256).hexdigest()[:20]
    assert AddressTokens("the-key").make(77, 2) == expected
    assert AddressTokens("new-key", ("the-key",)).read(expected.upper()).subscriber_id == 77
