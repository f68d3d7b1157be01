"""TOTP two-factor codes (RFC 6238, 30-second steps, 6 digits) and recovery codes.

No code is accepted twice: the step of every accepted TOTP code is stored on the account
and a code of that step or any earlier one is refused. Recovery codes are random (80
bits), stored as SHA-256 hashes and each used once. Functions take ``now`` (a Unix time)
so tests move the clock instead of waiting.

The TOTP secret is stored sealed: a Fernet token (AES-128-CBC and HMAC-SHA256) under a key
derived from ``SECRET_KEY``. The keys travel with the session
(``session.info["totp_keys"]``, set by the runtime from the settings): the first seals,
every one opens, so a ``SECRET_KEY`` rotation (old key in ``SECRET_KEY_FALLBACKS``) keeps
every phone working. :func:`set_secret` and :func:`reveal` are the only ways in and out.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timezone

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from mailer.staff.models import RecoveryCode, StaffUser

ISSUER = "ERTG digest console"
DRIFT_STEPS = 1  # accept the step before and after now: phones' clocks drift
RECOVERY_CODES = 10
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are copied by hand


class SealError(RuntimeError):
    """A stored TOTP secret cannot be opened with any key this process has."""


def _fernet(session: Session) -> MultiFernet:
    keys = session.info.get("totp_keys")
    if not keys:
        raise RuntimeError("this session carries no TOTP keys: open it from a Database built by mailer.runtime")
    return MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys])


def seal(session: Session, secret: str) -> str:
    """``secret`` encrypted under the current TOTP key."""
    return _fernet(session).encrypt(secret.encode()).decode()


def set_secret(session: Session, user: StaffUser, secret: str | None) -> None:
    """Store ``secret`` (None: remove two-factor) on ``user``, sealed."""
    user.totp_secret = None if secret is None else seal(session, secret)


def reveal(session: Session, user: StaffUser) -> str | None:
    """``user``'s TOTP secret in clear, or None when two-factor is not set up. Raises
    :class:`SealError` when no key opens it (``SECRET_KEY`` changed without a fallback)."""
    if user.totp_secret is None:
        return None
    try:
        return _fernet(session).decrypt(user.totp_secret.encode()).decode()
    except InvalidToken:
        raise SealError(
            f"the two-factor secret of {user.username} cannot be decrypted: was SECRET_KEY changed "
            "without the old key in SECRET_KEY_FALLBACKS? Reset their two-factor."
        ) from None


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code ``code`` is, within the allowed drift of ``now``, else None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        at = now + offset * totp.interval
        if totp.verify(code, for_time=at, valid_window=0):
            return totp.timecode(datetime.fromtimestamp(at, timezone.utc))
    return None


def accept_totp(
    user: StaffUser, code: str, now: float, secret: str | None = None, session: Session | None = None
) -> bool:
    """Whether ``code`` is a fresh TOTP code of ``user`` (or of ``secret`` in clear, during
    enrolment); on success its step is recorded so it can never be used again.

    With ``session`` the step is claimed in the database by one conditional UPDATE, so two
    requests racing with the same code cannot both get in: only one of them moves the
    stored step forward. Without ``secret`` the user's stored one is opened, which needs
    ``session`` (it carries the keys).
    """
    if secret is None and user.totp_secret is not None:
        if session is None:
            raise ValueError("accept_totp needs the session to open a stored secret")
        secret = reveal(session, user)
    if not secret:
        return False
    step = matching_step(secret, code, now)
    if step is None or step <= (user.totp_last_step or 0):
        return False
    if session is not None:
        claimed = session.execute(
            update(StaffUser)
            .where(StaffUser.id == user.id, StaffUser.totp_last_step < step)
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            session.refresh(user, ["totp_last_step"])
            return False
        set_committed_value(user, "totp_last_step", step)
        return True
    user.totp_last_step = step
    return True


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _digest(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def issue_recovery_codes(user: StaffUser) -> list[str]:
    """Replace ``user``'s recovery codes with new ones and return them (to show once)."""
    codes = [
        "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4)) for _ in range(RECOVERY_CODES)
    ]
    user.recovery_codes = [RecoveryCode(code_hash=_digest(c)) for c in codes]
    return codes


def use_recovery_code(user: StaffUser, code: str, when: datetime) -> bool:
    """Whether ``code`` is one of ``user``'s unused recovery codes; if so it is spent."""
    if len(_normalise(code)) != 16:
        return False
    wanted = _digest(code)
    for rc in user.recovery_codes:
        if rc.used_at is None and secrets.compare_digest(rc.code_hash, wanted):
            rc.used_at = when
            return True
    return False


def recovery_codes_left(user: StaffUser) -> int:
    return sum(1 for rc in user.recovery_codes if rc.used_at is None)
