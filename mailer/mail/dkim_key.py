"""The DKIM signing key: loaded once for signing, and its public half as DNS publishes it.

A DKIM verifier fetches ``<selector>._domainkey.<domain> TXT "v=DKIM1; k=rsa; p=..."``,
where ``p=`` is the base64 of the public key's DER SubjectPublicKeyInfo. We derive it from
the configured private key (PKCS#1 or PKCS#8 PEM, parsed by OpenSSL through
``cryptography``) so the record printed by ``mailer dns-records`` always matches the key
that signs (:mod:`mailer.mail.dkim`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


class DkimKeyError(ValueError):
    """The file is not an RSA private key we can sign with."""


@dataclass(frozen=True)
class PublicKey:
    der: bytes  # SubjectPublicKeyInfo
    bits: int

    @property
    def base64(self) -> str:
        return base64.b64encode(self.der).decode("ascii")


def load_private_key(private_pem: bytes):
    """The RSA private key of ``private_pem`` (``cryptography``'s object), or
    :class:`DkimKeyError`."""
    # cryptography loads OpenSSL bindings (~50 ms): only a configured key needs them.
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(private_pem.replace(b"\r\n", b"\n"), password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"not an RSA private key in PEM form ({exc})".replace("\n", " ")) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError(f"not an RSA private key in PEM form (a {type(key).__name__})")
    return key


def public_key(private_pem: bytes) -> PublicKey:
    """The public key of ``private_pem`` (an RSA key in PEM), or :class:`DkimKeyError`."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # as above: only with a key

    key = load_private_key(private_pem)
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(der=der, bits=key.key_size)
