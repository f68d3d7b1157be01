"""`mailer dns-records` (mailer/cli/dns.py, mailer/dns_records.py, mailer/mail/dkim_key.py): the
printed records, parsed back and checked the way receivers use them."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest

from mailer.cli import main
from mailer.mail.transport import MemoryTransport
from mailer.settings import Settings

MESSAGE = (
    b"From: ERTG <digest@ertg.example.org>\r\nTo: nurse@nhs.example\r\n"
    b"Subject: Your digest\r\nDate: Tue, 03 Mar 2026 09:00:00 +0000\r\n"
    b"Message-ID: <1@ertg.example.org>\r\n\r\nHello.\r\n"
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    made = {}
    for name, command in [
        ("pkcs1", ["openssl", "genrsa", "-traditional"]),
        ("pkcs8", ["openssl", "genpkey", "-algorithm", "RSA"]),
        ("other", ["openssl", "genrsa"]),
    ]:
        path = d / f"{name}.pem"
        subprocess.run([*command, "-out", str(path)], check=True, capture_output=True)
        made[name] = path
    return made


def openssl_public(path) -> str:
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return base64.b64encode(der).decode()


def dns_records(tmp_path, *args, **env):
    from mailer.app import create_app

    settings = Settings.from_env(
        {
            "MAILER_ENV": "test",
            "VAR_DIR": str(tmp_path / "var"),
            "SECRET_KEY": "test-secret-key",
            "BASE_URL": "https://digest.example.org",
            "MAIL_FROM": "ERTG <digest@ertg.example.org>",
            **env,
        }
    )
    app = create_app(settings, MemoryTransport())
    return app.test_cli_runner().invoke(main, ["dns-records", *args])


def parse(output: str) -> dict[tuple[str, str], str]:
    """Zone lines -> {(name, type): value}, a TXT value's quoted parts joined."""
    records = {}
    for line in output.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        name, rtype, rest = line.split(None, 2)
        value = "".join(re.findall(r'"([^"]*)"', rest)) if rtype == "TXT" else rest
        assert (name, rtype) not in records
        records[(name, rtype)] = value
    return records


@pytest.mark.parametrize("form", ["pkcs1", "pkcs8"])
def test_the_dkim_record_verifies_signatures_made_with_the_configured_key(tmp_path, keys, form):
    import dkim

    result = dns_records(
        tmp_path,
        "--spf",
        "203.0.113.7",
        "--spf",
        "include:_spf.relay.example",
        "--mx",
        "mx.ertg.example.org",
        "--dmarc-policy",
        "quarantine",
        "--dmarc-report",
        "dmarc@ertg.example.org",
        BOUNCE_DOMAIN="bounces.ertg.example.org",
        DKIM_SELECTOR="mail2026",
        DKIM_PRIVATE_KEY_FILE=str(keys[form]),
    )
    assert result.exit_code == 0, result.output
    records = parse(result.output)
    assert set(records) == {
        ("bounces.ertg.example.org", "TXT"),
        ("mail2026._domainkey.ertg.example.org", "TXT"),
        ("_dmarc.ertg.example.org", "TXT"),
        ("bounces.ertg.example.org", "MX"),
    }
    assert records[("bounces.ertg.example.org", "TXT")] == "v=spf1 ip4:203.0.113.7 include:_spf.relay.example ~all"
    assert records[("_dmarc.ertg.example.org", "TXT")] == (
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@ertg.example.org; adkim=r; aspf=r"
    )
    assert records[("bounces.ertg.example.org", "MX")] == "10 mx.ertg.example.org."
    txt = records[("mail2026._domainkey.ertg.example.org", "TXT")]
    tags = dict(t.strip().split("=", 1) for t in txt.split(";"))
    assert tags["v"] == "DKIM1" and tags["k"] == "rsa" and tags["p"] == openssl_public(keys[form])
    assert all(len(part) <= 255 for part in re.findall(r'"([^"]*)"', result.output))

    def published(name, timeout=5):
        assert name == b"mail2026._domainkey.ertg.example.org."
        return txt.encode()

    private = keys[form].read_bytes()
    signed = dkim.sign(MESSAGE, b"mail2026", b"ertg.example.org", private) + MESSAGE
    assert dkim.verify(signed, dnsfunc=published)
    forged = dkim.sign(MESSAGE, b"mail2026", b"ertg.example.org", keys["other"].read_bytes()) + MESSAGE
    assert not dkim.verify(forged, dnsfunc=published)


def test_spf_names_the_relay_in_smtp_url_unless_told_otherwise(tmp_path):
    result = dns_records(tmp_path, SMTP_URL="smtp://relay.trust.nhs.example:25")
    assert result.exit_code == 0, result.output
    records = parse(result.output)
    assert records[("ertg.example.org", "TXT")] == "v=spf1 a:relay.trust.nhs.example ~all"
    assert "no DKIM record: set DKIM_PRIVATE_KEY_FILE" in result.output
    assert "bounces+*@ertg.example.org to `mailer bounces process`" in result.output
    assert set(records) == {("ertg.example.org", "TXT"), ("_dmarc.ertg.example.org", "TXT")}
    assert records[("_dmarc.ertg.example.org", "TXT")] == "v=DMARC1; p=none; adkim=r; aspf=r"
    result = dns_records(tmp_path, SMTP_URL="smtp://192.0.2.25:25")
    assert parse(result.output)[("ertg.example.org", "TXT")] == "v=spf1 ip4:192.0.2.25 ~all"


@pytest.mark.parametrize(
    "args, env, error",
    [
        ((), {"SMTP_URL": "smtp://127.0.0.1:25"}, "Say which hosts send the mail: --spf ip4:ADDRESS"),
        ((), {}, "SMTP_URL names no relay"),
        (("--spf", "ip4:not-an-ip"), {}, "'ip4:not-an-ip': 'not-an-ip' is not an IP address"),
        (("--spf", "ip6:192.0.2.1"), {}, "an IPv4 address needs ip4:"),
        (("--spf", "+all"), {}, "'+all' is not an SPF mechanism this command writes"),
        (("--spf", "a", "--mx", "bad host"), {}, "'bad host' is not a host name"),
        (("--spf", "a", "--dmarc-report", "nobody"), {}, "--dmarc-report must be an email address"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_prints_no_records(tmp_path, args, env, error):
    result = dns_records(tmp_path, *args, **env)
    assert result.exit_code == 1
    assert error in result.output and "TXT" not in result.output


def test_domains_that_do_not_align_get_a_note(tmp_path, keys):
    result = dns_records(
        tmp_path,
        "--spf",
        "a",
        BOUNCE_DOMAIN="bounces.example.net",
        DKIM_SELECTOR="s1",
        DKIM_DOMAIN="example.com",
        DKIM_PRIVATE_KEY_FILE=str(keys["pkcs1"]),
    )
    assert result.exit_code == 0
    assert "does not align with ertg.example.org: SPF will not count" in result.output
    assert "DKIM signs as example.com, which does not align" in result.output
    assert ("s1._domainkey.example.com", "TXT") in parse(result.output)
    assert "bounces.example.net needs an MX record" in result.output
