"""Logging in to the console: throttling, the password step and the second factor.

Throttling counts every attempt per account name and per client address with the
service's rate limiter (Redis when configured, so every web process counts together) and
is checked *before* the password is hashed: a flood costs us nothing and learns nothing.
Each step returns an outcome the edge turns into a page; each attempt is audited here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.staff import audit, twofactor
from mailer.staff.accounts import find_user
from mailer.staff.models import StaffUser
from mailer.staff.passwords import verify_password

WINDOW = 15 * 60
PER_ACCOUNT = 10  # attempts on one account name per window, from anywhere
PER_CLIENT = 30  # attempts from one address per window, on any accounts


def throttle(limiter, username: str, ip: str | None) -> int:
    """Count one attempt; 0 when allowed, else the seconds until it may be tried again.

    ``limiter`` has ``check(key, limit, window) -> Verdict`` (mailer.counters). Keys
    hold a hash of the name, never the name itself. Both counters are always counted.
    """
    name = hashlib.sha256((username or "").strip().casefold().encode()).hexdigest()[:32]
    verdicts = [
        limiter.check(f"staff-login-account:{name}", PER_ACCOUNT, WINDOW),
        limiter.check(f"staff-login-client:{ip or '-'}", PER_CLIENT, WINDOW),
    ]
    return max((v.retry_after for v in verdicts if not v.allowed), default=0)


@dataclass(frozen=True)
class Attempt:
    user: StaffUser | None  # the account the step succeeded for, else None
    message: str = ""  # why not, in words a person can act on


FAILED = "That user name and password do not match an account that may log in."


def check_password(session: Session, username: str, password: str, *, ip: str | None, when: datetime) -> Attempt:
    """The first step. Unknown names, wrong passwords and disabled accounts get the same
    answer (and take the same time), so the page does not say which names exist."""
    user = find_user(session, username)
    ok, new_hash = verify_password(user.password_hash if user else None, password)
    if not ok or user.disabled:
        audit.record(
            session,
            user or (username or "")[:60].strip() or "-",
            "login.failed",
            user,
            after={"step": "password", "disabled": bool(user and user.disabled)},
            ip=ip,
            at=when,
        )
        return Attempt(None, FAILED)
    if new_hash:
        user.password_hash = new_hash
    return Attempt(user)


def check_second_factor(
    session: Session, user: StaffUser, code: str, *, ip: str | None, now: float, when: datetime
) -> Attempt:
    """The second step: a fresh TOTP code, or an unused recovery code (spent here)."""
    if twofactor.accept_totp(user, code, now, session=session):
        return Attempt(user)
    if twofactor.use_recovery_code(user, code, when):
        audit.record(
            session,
            user,
            "login.recovery_code",
            user,
            after={"recovery_codes_left": twofactor.recovery_codes_left(user)},
            ip=ip,
            at=when,
        )
        return Attempt(user)
    audit.record(session, user, "login.failed", user, after={"step": "code"}, ip=ip, at=when)
    return Attempt(
        None, "That code is not right, or was already used. Codes change every 30 seconds; a recovery code works once."
    )


def logged_in(session: Session, user: StaffUser, *, ip: str | None, when: datetime) -> None:
    """Record a completed login."""
    user.last_login_at = when
    audit.record(session, user, "login", user, ip=ip, at=when)
