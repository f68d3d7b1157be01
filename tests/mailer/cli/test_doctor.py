"""`mailer doctor` (mailer/cli/doctor.py over mailer/config_checks.py and mailer/health.py):
what it says about weak and sound production configurations, against a real database,
relay (TLS, login) and Redis port."""

from __future__ import annotations

import functools
import os
import subprocess

import pytest
from click.testing import CliRunner

from mailer.cli import main
from mailer.config_checks import check_dkim
from tests.mailservers import Relay, free_port

STRONG = "kV3f9Qm2xZp7LrT8wYb4NcH6sJd1GaUe5oiR"
# Every variable doctor reads, unset unless a test sets it (the shell's must not leak in).
VARIABLES = (
    "MAILER_ENV",
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "BASE_URL",
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "SUPPRESSION_KEY",
    "MAIL_FROM",
    "DKIM_PRIVATE_KEY_FILE",
    "DKIM_SELECTOR",
    "DKIM_DOMAIN",
    "BOUNCE_DOMAIN",
    "PORT",
)


def doctor(**env):
    environ = {name: None for name in VARIABLES}
    environ.update(env)
    result = CliRunner().invoke(main, ["doctor"], env=environ)
    lines = {}
    for line in result.output.splitlines():  # "FAIL  name  detail" -> {name: (mark, text)}
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] in ("ok", "WARN", "FAIL", "-"):
            lines[parts[1]] = (parts[0], parts[2] if len(parts) > 2 else "")
    return result, lines


@pytest.fixture(scope="module")
def tls_relay(tls_cert):
    """A relay that wants STARTTLS and a login, with the run's self-signed certificate."""
    cert, key = tls_cert
    relay = Relay(tls="starttls", certs=(cert, key), login=("digest", "s3cret")).start()
    yield relay, cert
    relay.stop()


@functools.cache
def _generated_key(bits: int) -> bytes:
    """One key of each size for the module, made by openssl as an operator would (an RSA
    key costs up to a second of CPU to generate; what each test checks is the file)."""
    return subprocess.run(["openssl", "genrsa", str(bits)], check=True, capture_output=True).stdout


def rsa_key(path, bits=2048, mode=0o600):
    path.write_bytes(_generated_key(bits))
    os.chmod(path, mode)
    return str(path)


def test_a_weak_production_configuration_gets_each_problem_and_its_fix(database_url, tmp_path):
    result, lines = doctor(
        MAILER_ENV="production",
        SECRET_KEY="hunter2",
        BASE_URL="http://mailer.example.org",
        DATABASE_URL=database_url,
        VAR_DIR=str(tmp_path),
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    assert result.exit_code == 1
    assert lines["settings"][0] == "FAIL" and "refuses to start" in lines["settings"][1]
    assert lines["secret_key"] == (
        "FAIL",
        "too weak to sign links in emails: SECRET_KEY has 7 characters, fewer than 32",
    )
    assert lines["base_url"][0] == "FAIL" and "must not travel in clear" in lines["base_url"][1]
    assert lines["mail_from"][0] == "FAIL" and "ertg.localhost" in lines["mail_from"][1]
    assert lines["smtp"][0] == "FAIL" and "never delivered" in lines["smtp"][1]
    assert lines["dkim"][0] == "WARN"
    assert lines["database"][0] == "ok" and lines["migrations"][0] == "ok"
    assert lines["redis"][0] == "FAIL" and "cannot reach Redis" in lines["redis"][1]
    assert "fix: Replace it with the output of: python3 -c 'import secrets" in result.output
    assert "hunter2" not in result.output  # lengths, never keys
    assert "\n6 problem(s) to fix, " in result.output


def test_a_sound_production_configuration_passes(database_url, tls_relay, tmp_path):
    relay, cert = tls_relay
    key = rsa_key(tmp_path / "dkim.pem")
    result, lines = doctor(
        MAILER_ENV="production",
        SECRET_KEY=STRONG,
        BASE_URL="https://digest.example.org",
        DATABASE_URL=database_url,
        VAR_DIR=str(tmp_path),
        MAIL_FROM="ERTG <digest@ertg.example.org>",
        DKIM_PRIVATE_KEY_FILE=key,
        DKIM_SELECTOR="mail2026",
        SMTP_URL=f"smtp://digest:s3cret@127.0.0.1:{relay.port}?starttls=1&cafile={cert}&timeout=5",
    )
    assert result.exit_code == 0, result.output
    assert lines["dkim"] == ("ok", "2048-bit RSA key, selector mail2026, d=ertg.example.org")
    assert lines["relay"][0] == "ok"
    assert lines["relay_tls"] == ("ok", f"127.0.0.1:{relay.port}: TLS with a verified certificate, logged in")
    assert lines["smtp"][0] == "ok" and lines["secret_key"][0] == "ok"
    assert "No problems found" in result.output


def test_the_relay_refusing_the_password_or_the_certificate_is_a_problem(database_url, tls_relay, tmp_path):
    relay, cert = tls_relay
    base = dict(
        MAILER_ENV="production",
        SECRET_KEY=STRONG,
        BASE_URL="https://digest.example.org",
        DATABASE_URL=database_url,
        VAR_DIR=str(tmp_path),
        MAIL_FROM="digest@ertg.example.org",
    )
    url = f"smtp://digest:wrong@127.0.0.1:{relay.port}?starttls=1&cafile={cert}&timeout=5"
    result, lines = doctor(**base, SMTP_URL=url)
    assert result.exit_code == 1
    assert lines["relay_tls"][0] == "FAIL" and "refused the user name or password" in lines["relay_tls"][1]
    assert "wrong" not in result.output
    untrusted = f"smtp://digest:s3cret@127.0.0.1:{relay.port}?starttls=1&timeout=5"  # no cafile
    result, lines = doctor(**base, SMTP_URL=untrusted)
    assert lines["relay_tls"][0] == "FAIL" and "CERTIFICATE_VERIFY_FAILED" in lines["relay_tls"][1]
    assert "?cafile=PATH" in result.output
    plain = f"smtp://digest:s3cret@127.0.0.1:{relay.port}"  # credentials in clear: refused
    result, lines = doctor(**base, SMTP_URL=plain)
    assert lines["smtp"][0] == "FAIL" and "no TLS" in lines["smtp"][1]


def test_mailer_env_unset_is_a_problem_even_on_sqlite(tmp_path):
    result, lines = doctor(VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    assert result.exit_code == 1
    assert lines["mailer_env"][0] == "FAIL" and "MAILER_ENV=production" in result.output
    # an empty database: reachable, but with no schema
    assert lines["database"][0] == "ok" and lines["migrations"][0] == "FAIL"
    assert "mailer db upgrade" in result.output


def test_dkim_key_problems_each_say_what_to_do(tmp_path):
    prod = {"MAILER_ENV": "production", "MAIL_FROM": "digest@ertg.example.org", "DKIM_SELECTOR": "mail2026"}
    good = rsa_key(tmp_path / "good.pem")
    assert check_dkim({**prod, "DKIM_PRIVATE_KEY_FILE": good}, True).status == "ok"
    missing = check_dkim({**prod, "DKIM_PRIVATE_KEY_FILE": str(tmp_path / "nope.pem")}, True)
    assert missing.status == "fail" and "cannot read" in missing.detail
    (tmp_path / "junk.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n")
    junk = check_dkim({**prod, "DKIM_PRIVATE_KEY_FILE": str(tmp_path / "junk.pem")}, True)
    assert junk.status == "fail" and "not an RSA private key" in junk.detail
    no_selector = check_dkim({**prod, "DKIM_SELECTOR": "", "DKIM_PRIVATE_KEY_FILE": good}, True)
    assert no_selector.status == "fail" and "DKIM_SELECTOR is not" in no_selector.detail
    bad_selector = check_dkim({**prod, "DKIM_SELECTOR": "mail 2026", "DKIM_PRIVATE_KEY_FILE": good}, True)
    assert bad_selector.status == "fail"
    other = check_dkim({**prod, "DKIM_DOMAIN": "example.com", "DKIM_PRIVATE_KEY_FILE": good}, True)
    assert other.status == "fail" and "does not align" in other.detail
    parent = check_dkim({**prod, "DKIM_DOMAIN": "example.org", "DKIM_PRIVATE_KEY_FILE": good}, True)
    assert parent.status == "ok"  # a parent domain aligns (relaxed)
    small = check_dkim({**prod, "DKIM_PRIVATE_KEY_FILE": rsa_key(tmp_path / "small.pem", 1024)}, True)
    assert small.status == "warn" and "1024" in small.detail and "new selector" in small.fix
    open_key = check_dkim({**prod, "DKIM_PRIVATE_KEY_FILE": rsa_key(tmp_path / "open.pem", mode=0o644)}, True)
    assert open_key.status == "warn" and "chmod 600" in open_key.fix
