"""Per-recipient return paths (VERP): the envelope sender that lets a bounce name its message.

Every message we send carries a return path that names what it was, so its bounce can be
matched and the address suppressed:

* ``bounces+<delivery id>-<sig>@<domain>``: a digest (a ``Delivery`` row);
* ``bounces+s<subscriber id>-<sig>@...``: a confirmation, "already subscribed" or manage-link
  email to that subscriber;
* ``bounces+n<item id>-<sig>@...``: a receipt or decision to the item's contact address;
* ``bounces+a-<sig>@...``: anything else sent to one address (test sends), where the
  signature covers the recipient address itself, so a bounce counts only for that address.

The short HMAC keeps strangers from forging bounces that would suppress someone's address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from mailer.mail.keyed_hmac import KeyedHmac
from mailer.settings import Settings
from mailer.settings.delivery import DeliveryConfig

DELIVERY, SUBSCRIBER, NOTICE, ADDRESS = "delivery", "subscriber", "notice", "address"
_PREFIX = {DELIVERY: "", SUBSCRIBER: "s", NOTICE: "n", ADDRESS: "a"}
_KIND = {v: k for k, v in _PREFIX.items()}


@dataclass(frozen=True)
class Target:
    """What a genuine return path names: ``kind`` and the row id (None for ADDRESS, whose
    ``signature`` must be checked against the address a report is about, see
    :meth:`ReturnPaths.covers`)."""

    kind: str
    id: int | None
    signature: str = ""


class ReturnPaths:
    """Makes return paths under the current secret and recognises those made under it or
    under any of ``fallbacks`` (``SECRET_KEY_FALLBACKS``), so the bounces of mail sent before
    a key rotation still match their message."""

    def __init__(self, secret: str, config: DeliveryConfig, sender_domain: str, fallbacks: tuple[str, ...] = ()):
        self._keys = tuple(
            KeyedHmac(hashlib.sha256(b"verp:" + s.encode()).digest(), "sha256") for s in (secret, *fallbacks)
        )
        self._key = self._keys[0]  # the current key signs; every key verifies
        self.local = config.bounce_local
        self.domain = config.bounce_domain or sender_domain
        self._pattern = re.compile(
            rf"^{re.escape(self.local)}\+([sna]?)(\d*)-([0-9a-f]{{8}})@{re.escape(self.domain)}$", re.I
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ReturnPaths:
        """The return paths of this deployment."""
        return cls(settings.secret_key, settings.delivery, settings.sender_domain, settings.secret_key_fallbacks)

    def _sig(self, subject: str, key: KeyedHmac | None = None) -> str:
        return (key or self._key).digest(subject.encode()).hex()[:8]

    def _signed(self, sig: str, subject: str) -> bool:
        """Whether ``sig`` signs ``subject`` under the current key or a fallback."""
        return any(hmac.compare_digest(sig, self._sig(subject, key)) for key in self._keys)

    def _make(self, kind: str, subject: str, ident: str = "") -> str:
        return f"{self.local}+{_PREFIX[kind]}{ident}-{self._sig(subject)}@{self.domain}"

    def address(self, delivery_id: int) -> str:
        """The return path of a digest delivery."""
        return self._make(DELIVERY, str(delivery_id), str(delivery_id))

    def subscriber(self, subscriber_id: int) -> str:
        """The return path of an email to a subscriber outside a digest (confirmation, links)."""
        return self._make(SUBSCRIBER, f"s{subscriber_id}", str(subscriber_id))

    def notice(self, item_id: int) -> str:
        """The return path of a partner notice (receipt, decision) about an item."""
        return self._make(NOTICE, f"n{item_id}", str(item_id))

    def recipient(self, address: str) -> str:
        """The return path of a message to ``address`` that has no row of its own (test sends)."""
        return self._make(ADDRESS, "a:" + address.strip().lower())

    def target(self, address: str) -> Target | None:
        """What a return path names, or None if it is not a genuine one of ours."""
        m = self._pattern.match(address.strip().strip("<>"))
        if not m:
            return None
        kind, ident, sig = _KIND[m.group(1).lower()], m.group(2), m.group(3).lower()
        if kind == ADDRESS:
            return Target(ADDRESS, None, sig) if not ident else None
        if not ident:
            return None
        subject = ident if kind == DELIVERY else f"{_PREFIX[kind]}{ident}"
        if not self._signed(sig, subject):
            return None
        return Target(kind, int(ident))

    def covers(self, target: Target, address: str) -> bool:
        """True when ``target`` (an ADDRESS return path) was made for ``address``."""
        return bool(address) and self._signed(target.signature, "a:" + address.strip().lower())

    def delivery_id(self, address: str) -> int | None:
        """The digest delivery a return path names, or None."""
        target = self.target(address)
        return target.id if target is not None and target.kind == DELIVERY else None
