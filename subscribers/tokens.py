"""Signed, purpose-scoped tokens for the links in emails.

A token carries ``[subscriber_id, token_version]``, signed with ``SECRET_KEY`` (older keys in
``SECRET_KEY_FALLBACKS`` still verify, so a key rotation does not break links already sent).
The purpose is the signing salt: a manage token is not an unsubscribe token. Bumping a
subscriber's ``token_version`` revokes every token issued before.

Lifetimes are the caller's choice (``max_age_seconds``): confirm links last
``CONFIRM_MAX_AGE_DAYS``, manage links ``MANAGE_LINK_MAX_AGE_DAYS``; unsubscribe links never
expire, because an old digest's unsubscribe link must always work.

:class:`Tokens` is the one place that signs links: subscribers' links and editors' preview
links (``mailer.digest.preview``) alike.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

from mailer.mail.keyed_hmac import KeyedHmac

# The group-* purposes carry ``[group member id, version]`` (mailer.groups): joining a
# group, its one-click leave, a member's delivery choice, a moderator's held messages, and
# a member reading and posting on the group's web pages (the archive's member cookie).
PURPOSES = (
    "confirm",
    "manage",
    # The digest's choices only (topics, partners, pause, resubscribe), never the data
    # pages: what a group email's manage link opens, since replies quote footers to a list.
    "manage-choices",
    "unsubscribe",
    "view",
    "group-confirm",
    "group-leave",
    "group-manage",
    "group-moderate",
    "group-web",
)
# The salt of an edition's preview-page links. Changing it would break live preview links.
PREVIEW_SALT = "ertg-edition-preview"


# What each purpose's link is called on an error page ("this is a link to ...").
PURPOSE_NAMES = {
    "confirm": "confirm a subscription",
    "manage": "manage a subscription",
    "manage-choices": "change your digest choices",
    "unsubscribe": "unsubscribe",
    "view": "view a digest online",
    "group-confirm": "confirm joining a group",
    "group-leave": "leave a group",
    "group-manage": "choose how you get a group's messages",
    "group-moderate": "moderate a group's held messages",
    "group-web": "read and post in a group on the web",
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


@dataclass(frozen=True)
class PreviewClaims:
    edition_id: int
    generation: int  # the edition's preview_generation when the link was made


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
    """Signs and reads link tokens with ``SECRET_KEY`` (and verifies with the fallbacks).

    :meth:`make` is on the hot path: a digest carries three tokens (manage, unsubscribe,
    view), so it is fast; :meth:`read` and the preview links use itsdangerous as it is.
    """

    def __init__(self, secret_key: str, fallbacks: tuple[str, ...] = (), clock: Callable[[], float] | None = None):
        """``clock`` (seconds since the epoch) stands in for the time in tests."""
        # itsdangerous signs with the last key and verifies with any of them.
        self._keys = [*fallbacks, secret_key]
        self.clock = clock or _now
        self._signer = TimestampSigner if clock is None else _signer_with_clock(clock)
        self._serializers = {p: self.serializer(f"ertg-{p}") for p in PURPOSES}
        self._minting: dict[str, KeyedHmac] = {}
        self._stamp: tuple[int, bytes] = (-1, b"")

    def serializer(self, salt: str) -> URLSafeTimedSerializer:
        """An itsdangerous serializer over these keys and this clock, for ``salt``."""
        return URLSafeTimedSerializer(self._keys, salt=salt, signer=self._signer)

    def make(self, purpose: str, subscriber_id: int, version: int) -> str:
        """A ``purpose`` token for ``[subscriber_id, version]``: the very bytes
        itsdangerous's ``dumps`` makes (same payload, timestamp and HMAC), at a fraction of
        its ~70 us. itsdangerous re-derives the signing key, tries zlib and builds a signer
        on every call; here the key is derived once per purpose and the timestamp encoded
        once per second."""
        signer = self._minting.get(purpose) or self._minting_hmac(purpose)
        now = int(self.clock())
        stamp = self._stamp  # one tuple, so threads never pair a second with another's stamp
        if stamp[0] != now:
            stamp = self._stamp = (now, base64_encode(int_to_bytes(now)))
        # The compact JSON itsdangerous writes; payloads this small are never compressed.
        value = base64_encode(b"[%d,%d]" % (subscriber_id, version)) + b"." + stamp[1]
        return (value + b"." + base64_encode(signer.digest(value))).decode("ascii")

    def _minting_hmac(self, purpose: str) -> KeyedHmac:
        signer = self._serializers[purpose].make_signer()
        if getattr(signer, "key_derivation", None) != "django-concat" or signer.sep not in (".", b"."):
            raise RuntimeError("itsdangerous defaults changed; Tokens.make must follow")
        self._minting[purpose] = found = KeyedHmac(signer.derive_key(), signer.digest_method().name)
        return found

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
                    "Use the matching link from your email.",
                    "wrong-purpose",
                ) from None
            raise TokenError("This link is not valid. It may have been copied incompletely.") from None
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in data)
        ):
            raise TokenError("This link is not valid.")
        return TokenClaims(subscriber_id=data[0], version=data[1])

    def make_preview(self, edition_id: int, generation: int) -> str:
        """A token for an edition's preview page. A random part makes every link distinct,
        so limits can count per link."""
        return self.serializer(PREVIEW_SALT).dumps(["preview", edition_id, generation, secrets.token_hex(4)])

    def read_preview(self, token: str, max_age_seconds: int) -> PreviewClaims:
        """The edition and generation in a preview token, or :class:`TokenError` (``expired``
        or ``tampered``). Whether the generation is still current is the caller's check."""
        try:
            data = self.serializer(PREVIEW_SALT).loads(token, max_age=max_age_seconds)
        except SignatureExpired:
            raise TokenError("This link has expired.", "expired") from None
        except BadSignature:
            raise TokenError("This link is not valid.") from None
        if not (
            isinstance(data, list)
            and len(data) == 4
            and data[0] == "preview"
            and all(isinstance(x, int) and not isinstance(x, bool) for x in data[1:3])
        ):
            raise TokenError("This link is not valid.")
        return PreviewClaims(edition_id=data[1], generation=data[2])

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
