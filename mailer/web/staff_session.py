"""Who is logged in to the console, read from the signed session cookie: the one check
the console's own pages (:func:`mailer.web.console.access.load_staff`) and the public
pages that let staff in (a members-only group archive) share.

A login is valid while its account exists, is enabled, has the ``session_version`` the
login saw, and the login is neither older than ``CONSOLE_SESSION_HOURS`` nor idle for
longer than ``CONSOLE_IDLE_MINUTES``.
"""

from __future__ import annotations

from flask import session
from sqlalchemy.orm import Session

from mailer.runtime import current as rt
from mailer.staff.models import StaffUser


def logged_in(db: Session, t: float) -> StaffUser | None:
    """The account of the session's console login at time ``t``, if still valid; reads
    the session and changes nothing."""
    info = session.get("console_user")
    if not info:
        return None
    settings = rt().settings
    user = db.get(StaffUser, info.get("id"))
    fresh = (
        t - info.get("at", 0) <= settings.console_session_hours * 3600
        and t - info.get("seen", 0) <= settings.console_idle_minutes * 60
    )
    if user is None or user.disabled or user.session_version != info.get("ver") or not fresh:
        return None
    return user
