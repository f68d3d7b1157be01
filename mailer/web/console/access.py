"""Who is logged in to the console, for how long, and what they may do.

A login lives in Flask's signed session cookie as the account id, the account's
``session_version`` (a password reset or disabling bumps it, ending every session), when
the login happened and when the last request came. At every console request
:func:`load_staff` drops a login that is older than ``CONSOLE_SESSION_HOURS``, idle for
longer than ``CONSOLE_IDLE_MINUTES``, or whose account changed.

Every view is wrapped by :func:`require` (or marked :func:`public`); a test walks the URL
map to make sure none is left out. The clock is ``app.extensions["console.clock"]``
(default ``time.time``) so tests move time instead of waiting.
"""

from __future__ import annotations

import time
from functools import wraps

from flask import current_app, g, redirect, render_template, request, session, url_for

from mailer.runtime import current as rt
from mailer.staff.models import StaffUser
from mailer.staff.permissions import ADMIN, allows, needs_two_factor
from mailer.web.console.blueprint import bp
from mailer.web.security_headers import console_headers
from mailer.web.staff_session import logged_in

KEYS = ("console_user", "console_pending", "console_enrol_secret")


def now() -> float:
    return current_app.extensions.get("console.clock", time.time)()


def writes(view):
    """Mark a GET view that writes (even only to roll back, as a dry run does): its
    session, like every POST's, takes SQLite's write lock up front (see mailer.db)."""
    view.console_writes = True
    return view


def db():
    """This request's database session (closed, uncommitted work rolled back, at the end).
    A POST, or a GET marked :func:`writes`, gets a session that will write."""
    if "console_db" not in g:
        view = current_app.view_functions.get(request.endpoint)
        reads = request.method in ("GET", "HEAD") and not getattr(view, "console_writes", False)
        g.console_db = rt().db.sessions() if reads else rt().db.writer()
    return g.console_db


@bp.teardown_request
def _close_db(_exc):
    s = g.pop("console_db", None)
    if s is not None:
        s.close()


def start_login(user: StaffUser) -> None:
    """Make ``user`` the logged-in person. Everything the session held before (a
    half-finished login, an old CSRF token) is dropped first."""
    session.clear()
    session.permanent = True
    t = now()
    session["console_user"] = {"id": user.id, "ver": user.session_version, "at": t, "seen": t}


def end_login() -> None:
    for key in KEYS:
        session.pop(key, None)


@bp.before_request
def load_staff() -> None:
    """Set ``g.staff`` to the logged-in account, or None (and ``g.expired`` when a login
    just ran out)."""
    g.staff, g.expired = None, False
    info = session.get("console_user")
    if not info:
        return
    t = now()
    user = logged_in(db(), t)
    if user is None:
        end_login()
        g.expired = True
        return
    session["console_user"] = {**info, "seen": t}
    g.staff = user


def must_enrol(user: StaffUser) -> bool:
    """Roles that can send must set up two-factor before anything else."""
    return user.totp_secret is None and needs_two_factor(user.role)


def safe_next(path: str | None) -> str | None:
    """Only a path inside the console is a place to return to after logging in."""
    if path and path.startswith("/admin") and not path.startswith("//") and "\\" not in path:
        return path
    return None


def to_login():
    nxt = safe_next(request.full_path.rstrip("?") if request.method == "GET" else None)
    return redirect(url_for("console.login", next=nxt, expired=1 if g.get("expired") else None))


def forbidden():
    return render_template(
        "console/message.html",
        title="Not allowed",
        message="Your role does not allow this page. Ask an admin if you need it.",
    ), 403


def require(permission: str, *, enrolling: bool = False):
    """Let the view run only for a logged-in account whose role has ``permission``.

    Logged out: a redirect to the login page (which returns here after). An account that
    must enrol two-factor first goes to the enrolment page (unless ``enrolling``, the
    enrolment page itself). A role without the permission: 403.
    """
    allows(ADMIN, permission)  # a misspelt permission raises KeyError when the module loads

    def wrap(view):
        @wraps(view)
        def checked(*args, **kwargs):
            user = g.get("staff")
            if user is None:
                return to_login()
            if not enrolling and must_enrol(user):
                return redirect(url_for("console.enrol"))
            if not allows(user.role, permission):
                return forbidden()
            return view(*args, **kwargs)

        checked.console_permission = permission
        return checked

    return wrap


def public(view):
    """Mark a view that must work logged out (the login steps)."""
    view.console_public = True
    return view


@bp.app_context_processor
def _permissions():
    """``may(PERMISSION)`` in templates: whether the logged-in person's role has it (the
    navigation offers only what they may open)."""

    def may(permission: str) -> bool:
        user = g.get("staff")
        return user is not None and allows(user.role, permission)

    scale = rt().settings.console_poll_scale

    def poll_ms(ms: int) -> int:
        """A live page's polling interval (``ms`` as shipped), in milliseconds."""
        return max(50, round(ms * scale))

    def refresh_seconds(seconds: int) -> int:
        """A no-script page's ``<meta http-equiv="refresh">`` interval, whole seconds."""
        return max(1, round(seconds * scale))

    return {"may": may, "poll_ms": poll_ms, "refresh_seconds": refresh_seconds}


bp.after_request(console_headers)  # on every console response, errors and redirects included
