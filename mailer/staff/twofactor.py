"""TOTP two-factor codes (RFC 6238, 30-second steps, 6 digits) and recovery codes.

No code is accepted twice: the step of every accepted TOTP code is stored on the account
and a code of that step or any earlier one is refused. Recovery codes are random (80
bits), stored as SHA-256 hashes and each used once. Functions take ``now`` (a Unix time)
so tests move the clock instead of waiting.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

import pyotp
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from mailer.staff.models import RecoveryCode, StaffUser

ISSUER = "ERTG digest console"
DRIFT_STEPS = 1  # accept the step before and after now: phones' clocks drift
RECOVERY_CODES = 10
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are copied by hand


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
    """Whether ``code`` is a fresh TOTP code of ``user`` (or of ``secret`` during enrolment);
    on success its step is recorded so it can never be used again.

    With ``session`` the step is claimed in the database by one conditional UPDATE, so two
    requests racing with the same code cannot both get in: only one of them moves the
    stored step forward.
    """
    secret = secret or user.totp_secret
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
