"""Signed tokens that live in an email address: ``unsubscribe+<token>@<domain>``.

The ``mailto:`` of every digest's ``List-Unsubscribe`` names the reader through such a
token, so a mail to it unsubscribes exactly that reader, whoever the ``From:`` claims to
be. Link tokens (:mod:`subscribers.tokens`) cannot serve here: they are case-sensitive
base64, and mail systems may change the case of a local part on the way. These are
``<subscriber id>-<token version>-<20 hex digits of HMAC-SHA256>``: digits, lower-case
letters and hyphens, read the same in any case, at most 64 characters with the prefix.

Like link tokens they are signed with ``SECRET_KEY`` (fallback keys still verify, so a key
rotation does not break the unsubscribe address of a digest already sent), never expire,
and stop working when the subscriber's ``token_version`` moves on (the caller checks).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from mailer.mail.keyed_hmac import KeyedHmac
from subscribers.tokens import TokenClaims, TokenError

_SIG_HEX = 20  # 80 bits: guessing one over LMTP is hopeless
_TOKEN = re.compile(rf"^(\d{{1,12}})-(\d{{1,9}})-([0-9a-f]{{{_SIG_HEX}}})$")


def _key(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"ertg-address-{purpose}:".encode() + secret.encode()).digest()


class AddressTokens:
    """Make and read address tokens for one purpose (``unsubscribe``)."""

    def __init__(self, secret_key: str, fallbacks: tuple[str, ...] = (), purpose: str = "unsubscribe"):
        # The current key signs; every key verifies (keys derived once: digests mint many).
        self._keys = [KeyedHmac(_key(k, purpose), "sha256") for k in (secret_key, *fallbacks)]

    def _sig(self, key: KeyedHmac, subscriber_id: int, version: int) -> str:
        return key.digest(b"%d-%d" % (subscriber_id, version)).hex()[:_SIG_HEX]

    def make(self, subscriber_id: int, version: int) -> str:
        return f"{subscriber_id}-{version}-{self._sig(self._keys[0], subscriber_id, version)}"

    def read(self, token: str) -> TokenClaims:
        """The claims of a genuine ``token`` (any letter case), else :class:`TokenError`.
        Whether the version is still current is the caller's check, against the row."""
        m = _TOKEN.match(token.strip().lower())
        if not m:
            raise TokenError("This address is not a valid unsubscribe address.")
        sid, version, sig = int(m.group(1)), int(m.group(2)), m.group(3)
        if not any(hmac.compare_digest(sig, self._sig(k, sid, version)) for k in self._keys):
            raise TokenError("This address is not a valid unsubscribe address.")
        return TokenClaims(subscriber_id=sid, version=version)
