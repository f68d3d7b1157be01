"""DKIM signing (mailer/mail/dkim.py): OpenSSL-backed, proved equal to dkimpy.

dkimpy is the reference: its verifier, fed our public key through a DNS stub, must accept
every signature we make, and reject it once a signed header or the body changes; the body
hash must be the one dkimpy computes for the same message.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import dkim
import pytest

from mailer.mail import dkim as signing
from mailer.mail.dkim_key import DkimKeyError, load_private_key, public_key
from mailer.settings.delivery import DeliveryConfig

DIGEST = (
    b"From: End Racism This Generation <digest@ertg.example.org>\r\n"
    b"To: Amina Rahman <amina@x.org>\r\n"
    b"Subject: =?utf-8?q?December_digest_=E2=80=94_clinics?=\r\n"
    b"Date: Tue, 01 Dec 2026 09:00:00 +0000\r\n"
    b"Message-ID: <abc@ertg.example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"List-Id: Digest <digest.ertg.example.org>\r\n"
    b"List-Unsubscribe: <https://digest.example.org/u/"
    + b"t"
    * 120
    + b">,\r\n <mailto:unsubscribe+tok@ertg.example.org>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Amina,  \r\n"
    b"two  spaces\tand a tab\r\n"
    b".a line starting with a dot\r\n"
    b"\r\n"
    b"--b1--\r\n"
    b"\r\n"
    b"\r\n"
)


@pytest.fixture(scope="module")
def key(dkim_key):
    path, public = dkim_key
    pem = Path(path).read_bytes()
    return pem, public


def dns(public: bytes):
    def lookup(name, timeout=5):
        assert name == b"mail2026._domainkey.ertg.example.org."
        return b"v=DKIM1; k=rsa; p=" + public

    return lookup


def signer(pem: bytes, now: float = 1_796_000_000) -> signing.Signer:
    config = DeliveryConfig(dkim_selector="mail2026", dkim_key=pem)
    return signing.Signer(config, "ertg.example.org", clock=lambda: now)


@pytest.mark.parametrize(
    "message",
    [
        DIGEST,
        DIGEST.replace(b"\r\n", b"\n"),  # bare LF in: signed as CRLF, as SMTP carries it
        DIGEST.rstrip(b"\r\n"),  # no final line end
        # a header folded with tabs, odd spacing around the colon, a repeated header
        b"From:  Someone\r\n\t<s@example.org>  \r\nTo: a@x.org\r\nReferences: <1@x>\r\n"
        b"References: <2@x>\r\nSubject:\tHi   there \r\n\r\nbody \t \r\n",
        b"From: s@example.org\r\nSubject: empty\r\n\r\n",  # empty body
    ],
    ids=["digest", "bare-lf", "no-final-crlf", "folded-headers", "empty-body"],
)
def test_dkimpy_verifies_every_signature_and_computes_the_same_body_hash(key, message):
    pem, public = key
    signed = signer(pem)(message)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=ertg.example.org;")
    assert dkim.verify(signed, dnsfunc=dns(public))
    assert all(len(line) <= 78 for line in signed.split(b"\r\n\r\n")[0].split(b"\r\n")[:8])
    # dkimpy's own signature of the same bytes has the same body hash.
    ours = signing.crlf(message)
    theirs = dkim.sign(ours, b"mail2026", b"ertg.example.org", pem, canonicalize=(b"relaxed", b"relaxed"))
    bh = re.compile(rb"bh=([A-Za-z0-9+/=]+)")
    assert bh.search(signed).group(1) == bh.search(theirs.replace(b"\r\n ", b"")).group(1)


def test_the_signature_breaks_when_a_signed_header_or_the_body_changes(key):
    pem, public = key
    signed = signer(pem)(DIGEST)
    tampered = [
        signed.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""),  # stripped
        signed.replace(b"Subject: =?utf-8?q?December", b"Subject: =?utf-8?q?January"),
        signed.replace(b"Hello Amina", b"Hello Anyone"),
        # a signed header added that the message did not have (signed as absent)
        signed.replace(b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\nReply-To: evil@x.org\r\n"),
    ]
    for message in tampered:
        assert message != signed
        assert not dkim.verify(message, dnsfunc=dns(public))
    # Relaxed canonicalisation: a relay refolding or respacing changes nothing.
    respaced = signed.replace(b"Hello Amina,  \r\n", b"Hello    Amina,\r\n").replace(b"To: Amina", b"To:   Amina")
    assert dkim.verify(respaced, dnsfunc=dns(public))


def test_t_is_the_clock_and_no_key_means_no_signature(key):
    pem, _ = key
    signed = signer(pem, now=1_800_000_123.9)(DIGEST)
    assert b" t=1800000123;" in signed
    unsigned = signing.Signer(DeliveryConfig(), "ertg.example.org")
    assert unsigned(DIGEST) is DIGEST


def test_the_rsa_signature_is_dkimpys_for_the_same_signed_bytes(key):
    """PKCS#1 v1.5 is deterministic: OpenSSL's signature of the canonical headers is the
    one dkimpy's pure-Python RSA makes of them."""
    from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key

    pem, _ = key
    data = b"from:s@example.org\r\nsubject:hi\r\ndkim-signature:v=1; b="
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    ours = load_private_key(pem).sign(data, padding.PKCS1v15(), hashes.SHA256())
    import hashlib

    theirs = RSASSA_PKCS1_v1_5_sign(hashlib.sha256(data), parse_pem_private_key(pem))
    assert ours == bytes(theirs)


def test_keys_that_cannot_sign_are_refused_with_a_clear_error(tmp_path):
    import subprocess

    with pytest.raises(DkimKeyError, match="not an RSA private key"):
        load_private_key(b"-----BEGIN RSA PRIVATE KEY-----\nnot base64\n-----END RSA PRIVATE KEY-----\n")
    ec = tmp_path / "ec.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec], check=True
    )
    with pytest.raises(DkimKeyError, match="not an RSA private key"):
        load_private_key(ec.read_bytes())


def test_the_published_public_key_is_the_signing_keys(key):
    pem, public = key
    published = public_key(pem)
    assert published.bits == 2048
    assert published.base64.encode() == public
    assert base64.b64decode(published.base64) == published.der


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"one\r\n",
        b"tab\tand  two  spaces\r\n \t \r\nend \t\r\n\r\n\r\n",
        b"\t lead\r\ntrail \r\n=20\r\n.\r\n",
        b"no final line end  ",
        b"a" * 200 + b"   \r\n" + b"x  y\t\tz",
    ],
)
def test_the_relaxed_body_is_dkimpys(body):
    from dkim.canonicalization import Relaxed

    expected = Relaxed.canonicalize_body(body if body.endswith(b"\r\n") or not body else body + b"\r\n")
    assert signing.relaxed_body(body) == expected
