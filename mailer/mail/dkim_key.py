"""The public half of the DKIM signing key, as DNS publishes it.

A DKIM verifier fetches ``<selector>._domainkey.<domain> TXT "v=DKIM1; k=rsa; p=..."``,
where ``p=`` is the base64 of the public key's DER SubjectPublicKeyInfo. We derive it from
the configured private key (PKCS#1 or PKCS#8 PEM, parsed by dkimpy) so the record printed by
``mailer dns-records`` always matches the key that signs. dkimpy's own DER builder cannot
encode integers, hence the few lines of DER below.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

# 1.2.840.113549.1.1.1 (rsaEncryption), then NULL parameters: RFC 8017 appendix A.1.
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")


class DkimKeyError(ValueError):
    """The file is not an RSA private key dkimpy can sign with."""


@dataclass(frozen=True)
class PublicKey:
    der: bytes  # SubjectPublicKeyInfo
    bits: int

    @property
    def base64(self) -> str:
        return base64.b64encode(self.der).decode("ascii")


def public_key(private_pem: bytes) -> PublicKey:
    """The public key of ``private_pem`` (an RSA key in PEM), or :class:`DkimKeyError`."""
    # dkimpy pulls in dnspython (~0.25 s); only a configured key needs it.
    from dkim.crypto import UnparsableKeyError, parse_pem_private_key

    try:
        key = parse_pem_private_key(private_pem.replace(b"\r\n", b"\n"))
    except (UnparsableKeyError, ValueError, IndexError, TypeError) as exc:
        raise DkimKeyError(f"not an RSA private key in PEM form ({exc})".replace("\n", " ")) from None
    modulus, exponent = key["modulus"], key["publicExponent"]
    rsa_public = _der(0x30, _integer(modulus) + _integer(exponent))
    spki = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\x00" + rsa_public))
    return PublicKey(der=spki, bits=modulus.bit_length())


def _integer(n: int) -> bytes:
    # Big-endian, with a leading zero byte when the top bit is set (DER integers are signed).
    body = n.to_bytes(n.bit_length() // 8 + 1, "big")
    return _der(0x02, body)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + length + body
