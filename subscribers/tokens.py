"""Signed, purpose-scoped tokens for the links in emails.

A token carries ``[subscriber_id, token_version]``, signed with ``SECRET_KEY`` (older keys in
``SECRET_KEY_FALLBACKS`` still verify, so a key rotation does not break links already sent).
The purpose is the signing salt: a manage token is not an unsubscribe token. Bumping a
subscriber's ``token_version`` revokes every token issued before.

Lifetimes are the caller's choice (``max_age_seconds``): confirm links last
``CONFIRM_MAX_AGE_DAYS``, manage links ``MANAGE_LINK_MAX_AGE_DAYS``; unsubscribe links never
expire, because an old digest's unsubscribe link must always work.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

PURPOSES = ("confirm", "manage", "unsubscribe", "view")


# What each purpose's link is called on an error page ("this is a link to ...").
PURPOSE_NAMES = {
    "confirm": "confirm a subscription",
    "manage": "manage a subscription",
    "unsubscribe": "unsubscribe",
    "view": "view a digest online",
}


class TokenError(Exception):
    """A link that cannot be honoured; ``reason`` is safe to show the user.

    ``kind`` tells pages which help to offer: ``expired``, ``tampered``, ``wrong-purpose``,
    ``revoked`` or ``cancelled``.
    """

    def __init__(self, reason: str, kind: str = "tampered"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class TokenClaims:
    subscriber_id: int
    version: int


def _now() -> float:
    return time.time()


def _signer_with_clock(clock: Callable[[], float]) -> type[TimestampSigner]:
    """itsdangerous's signer reading the time from ``clock``, for signing and for the age
    check alike (tests move the clock instead of sleeping)."""

    class ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockSigner


class Tokens:
    def __init__(self, secret_key: str, fallbacks: tuple[str, ...] = (),
                 clock: Callable[[], float] | None = None):
        """``clock`` (seconds since the epoch) stands in for the time in tests."""
        # itsdangerous signs with the last key and verifies with any of them.
        self._keys = [*fallbacks, secret_key]
        self.clock = clock or _now
        signer = TimestampSigner if clock is None else _signer_with_clock(clock)
        self._serializers = {
            p: URLSafeTimedSerializer(self._keys, salt=f"ertg-{p}", signer=signer) for p in PURPOSES
        }

    def make(self, purpose: str, subscriber_id: int, version: int) -> str:
        return self._serializers[purpose].dumps([subscriber_id, version])

    def read(self, purpose: str, token: str, max_age_seconds: int | None = None) -> TokenClaims:
        """The claims in ``token``, or :class:`TokenError` if it is forged, expired or not
        for ``purpose``. Revocation (version) is checked by the caller against the row."""
        try:
            data = self._serializers[purpose].loads(token, max_age=max_age_seconds)
        except SignatureExpired:
            raise TokenError("This link has expired.", "expired") from None
        except BadSignature:
            other = self._purpose_of(token, exclude=purpose)
            if other:
                raise TokenError(
                    f"This is a link to {PURPOSE_NAMES[other]}, not to {PURPOSE_NAMES[purpose]}. "
                    "Use the matching link from your email.", "wrong-purpose") from None
            raise TokenError("This link is not valid. It may have been copied incompletely.") from None
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in data)
        ):
            raise TokenError("This link is not valid.")
        return TokenClaims(subscriber_id=data[0], version=data[1])

    def _purpose_of(self, token: str, exclude: str) -> str | None:
        """The purpose a genuine token was signed for, if it was not ``exclude``."""
        for purpose, serializer in self._serializers.items():
            if purpose == exclude:
                continue
            try:
                serializer.loads(token)
            except BadSignature:  # SignatureExpired is a subclass: never raised without max_age
                continue
            return purpose
        return None
