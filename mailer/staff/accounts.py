"""Staff accounts: create, list, disable, reset a password or two-factor; each change is
written to the audit log in the caller's transaction.

``actor`` is whoever makes the change (a :class:`StaffUser`, or ``cli:<os user>`` for a
command); ``ip`` the client's address when it came over the web.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.staff import audit
from mailer.staff.models import StaffUser
from mailer.staff.passwords import hash_password, verify_password
from mailer.staff.permissions import ROLES
from mailer.validation import InvalidInput

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,59}")


def clean_username(raw: str) -> str:
    """``raw`` trimmed and case-folded, or :class:`InvalidInput` saying what is allowed.

    Names are plain ASCII so two accounts cannot look alike (``alice`` and ``аlice``)."""
    name = (raw or "").strip().casefold()
    if not USERNAME.fullmatch(name):
        raise InvalidInput(
            "username",
            "A user name is 2-60 characters: lower-case letters, "
            "digits, dots, dashes and underscores, starting with a letter or digit.",
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput("role", f"The role must be one of {', '.join(ROLES)}, not {role!r}.")
    return role


def find_user(session: Session, username: str) -> StaffUser | None:
    """The account named ``username`` (any case), or None."""
    name = (username or "").strip().casefold()
    return session.scalar(select(StaffUser).where(StaffUser.username == name)) if name else None


def get_user(session: Session, username: str) -> StaffUser:
    user = find_user(session, username)
    if user is None:
        raise InvalidInput("username", f"There is no staff account {username!r}.")
    return user


def list_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.username)))


def create_user(
    session: Session, username: str, role: str, password: str, *, actor: StaffUser | str, ip: str | None = None
) -> StaffUser:
    """A new account; :class:`InvalidInput` for a taken name, unknown role or weak password."""
    name = clean_username(username)
    check_role(role)
    if find_user(session, name) is not None:
        raise InvalidInput("username", f"A staff account {name!r} already exists.")
    user = StaffUser(
        username=name,
        role=role,
        password_hash=hash_password(password),
        totp_last_step=0,
        disabled=False,
        session_version=1,
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "staff.create", user, after=user.summary(), ip=ip)
    return user


def disable_user(session: Session, user: StaffUser, *, actor: StaffUser | str, ip: str | None = None) -> None:
    """Stop ``user`` logging in and end their sessions. The account and its history stay."""
    if user.disabled:
        raise InvalidInput("username", f"{user.username} is already disabled.")
    before = user.summary()
    user.disabled = True
    user.session_version += 1
    audit.record(session, actor, "staff.disable", user, before=before, after=user.summary(), ip=ip)


def reset_password(
    session: Session,
    user: StaffUser,
    new_password: str | None = None,
    *,
    reset_two_factor: bool = False,
    actor: StaffUser | str,
    ip: str | None = None,
) -> str:
    """Give ``user`` ``new_password`` (default: a random one) and return it, ending every
    session they have. ``reset_two_factor`` also removes their TOTP secret and recovery
    codes (a lost phone): they enrol again at their next login."""
    password = new_password or secrets.token_urlsafe(15)
    before = user.summary()
    user.password_hash = hash_password(password)
    user.session_version += 1
    if reset_two_factor:
        user.totp_secret = None  # two-factor removed: nothing sealed is left
        user.recovery_codes = []
    audit.record(
        session,
        actor,
        "staff.reset_password",
        user,
        before=before,
        after={**user.summary(), "two_factor_reset": reset_two_factor},
        ip=ip,
    )
    return password


def change_own_password(session: Session, user: StaffUser, current: str, new: str, *, ip: str | None = None) -> None:
    """``user`` changes their own password: ``current`` must be right, ``new`` must pass
    the rules and differ from it. Every other session of theirs ends (the caller starts a
    fresh one for this browser).

    A refusal raises :class:`InvalidInput` naming the field at fault and changes nothing
    but the audit log: a wrong current password is recorded as ``login.failed`` (step
    ``change_password``), so guesses made from someone else's open session show up. The
    caller commits either way.
    """
    ok, _ = verify_password(user.password_hash, current)
    if not ok:
        audit.record(session, user, "login.failed", user, after={"step": "change_password"}, ip=ip)
        raise InvalidInput("current", "That is not your current password.")
    if new == current:
        raise InvalidInput("new", "Choose a new password different from the current one.")
    user.password_hash = hash_password(new)
    user.session_version += 1
    audit.record(session, user, "staff.change_password", user, ip=ip)


def _active_admins(session: Session) -> int:
    return len(
        session.scalars(select(StaffUser.id).where(StaffUser.role == "admin", StaffUser.disabled.is_(False))).all()
    )


def change_role(session: Session, user: StaffUser, role: str, *, actor: StaffUser | str, ip: str | None = None) -> None:
    """Give ``user`` ``role``; their sessions end (the console checks permissions on the
    next request anyway, but a demoted person should log in again knowing it). Refuses the
    change that would leave no active admin, and an admin changing their own role."""
    check_role(role)
    if user.role == role:
        raise InvalidInput("role", f"{user.username} is already {role}.")
    if isinstance(actor, StaffUser) and actor.id == user.id:
        raise InvalidInput("role", "You cannot change your own role: ask another admin.")
    if user.role == "admin" and not user.disabled and _active_admins(session) <= 1:
        raise InvalidInput("role", "This is the last active admin: make someone else admin first.")
    before = user.summary()
    user.role = role
    user.session_version += 1
    audit.record(session, actor, "staff.role", user, before=before, after=user.summary(), ip=ip)


def reset_two_factor(session: Session, user: StaffUser, *, actor: StaffUser | str, ip: str | None = None) -> None:
    """Remove ``user``'s TOTP secret and recovery codes (a lost phone) and end their
    sessions; roles that need two-factor enrol again at their next login."""
    if user.totp_secret is None:
        raise InvalidInput("username", f"{user.username} has no two-factor set up.")
    before = user.summary()
    user.totp_secret = None
    user.recovery_codes = []
    user.session_version += 1
    audit.record(session, actor, "staff.reset_2fa", user, before=before, after=user.summary(), ip=ip)
