"""Per-recipient return paths (VERP) and DKIM signatures, applied to finished messages.

The return path ``bounces+<delivery id>-<signature>@<domain>`` lets a bounce name the
delivery it is about; the short HMAC keeps strangers from forging bounces that would
suppress someone's address.
"""
from __future__ import annotations

import hashlib
import hmac
import re

from mailer.delivery.config import DeliveryConfig

# Headers a DKIM signature covers; List-* so a relay cannot strip or alter unsubscribing.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post")


class ReturnPaths:
    def __init__(self, secret: str, config: DeliveryConfig, sender_domain: str):
        self._key = hashlib.sha256(b"verp:" + secret.encode()).digest()
        self.local = config.bounce_local
        self.domain = config.bounce_domain or sender_domain
        self._pattern = re.compile(
            rf"^{re.escape(self.local)}\+(\d+)-([0-9a-f]{{8}})@{re.escape(self.domain)}$", re.I)

    def _sig(self, delivery_id: int) -> str:
        return hmac.new(self._key, str(delivery_id).encode(), hashlib.sha256).hexdigest()[:8]

    def address(self, delivery_id: int) -> str:
        return f"{self.local}+{delivery_id}-{self._sig(delivery_id)}@{self.domain}"

    def delivery_id(self, address: str) -> int | None:
        """The delivery a return path names, or None if it is not a genuine one of ours."""
        m = self._pattern.match(address.strip().strip("<>"))
        if not m or not hmac.compare_digest(m.group(2).lower(), self._sig(int(m.group(1)))):
            return None
        return int(m.group(1))


class Signer:
    """DKIM-signs messages with dkimpy when a key is configured, else passes them through."""

    def __init__(self, config: DeliveryConfig, sender_domain: str):
        self.key = config.dkim_key
        self.selector = (config.dkim_selector or "").encode()
        self.domain = (config.dkim_domain or sender_domain).encode()

    def __call__(self, message: bytes) -> bytes:
        if not self.key:
            return message
        import dkim

        signature = dkim.sign(message, self.selector, self.domain, self.key,
                              include_headers=list(SIGNED_HEADERS),
                              canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")
        return signature + message
