"""DKIM signatures (RFC 6376) on finished messages, made with dkimpy.

The signature covers the List-* headers as well as the usual ones, so a relay can neither
strip nor alter the unsubscribe headers without breaking it. The DNS record that lets
receivers verify it is printed from the same key (:mod:`mailer.mail.dkim_key`).
"""

from __future__ import annotations

from mailer.settings.delivery import DeliveryConfig

# Headers a DKIM signature covers; List-* so a relay cannot strip or alter unsubscribing.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"reply-to",
    b"auto-submitted",
    b"feedback-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    # group posts: the list's own headers, and the author's threading and Cc
    b"list-post",
    b"list-help",
    b"list-archive",
    b"archived-at",
    b"cc",
    b"in-reply-to",
    b"references",
)


class Signer:
    """DKIM-signs messages with dkimpy when a key is configured, else passes them through."""

    def __init__(self, config: DeliveryConfig, sender_domain: str):
        self.key = config.dkim_key
        self.selector = (config.dkim_selector or "").encode()
        self.domain = (config.dkim_domain or sender_domain).encode()

    def __call__(self, message: bytes) -> bytes:
        if not self.key:
            return message
        import dkim  # dkimpy pulls in dnspython (~0.25 s): only processes with a key pay for it

        signature = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.key,
            include_headers=list(SIGNED_HEADERS),
            canonicalize=(b"relaxed", b"relaxed"),
            linesep=b"\r\n",
        )
        return signature + message
