"""Logging in (password, then a TOTP or recovery code), logging out, enrolling TOTP.

Each step is throttled per account and per client before anything is checked. A
half-finished login (password right, code still to come) lasts five minutes.
"""

from __future__ import annotations

import segno
from flask import g, redirect, render_template, request, session, url_for

from mailer.counters import Verdict
from mailer.db import utcnow
from mailer.staff import audit, twofactor
from mailer.staff import login as staff_login
from mailer.staff.models import StaffUser
from mailer.staff.permissions import DASHBOARD, needs_two_factor
from mailer.web.console.access import db, end_login, must_enrol, now, public, require, safe_next, start_login
from mailer.web.console.blueprint import bp
from mailer.web.console.forms import CodeForm, EnrolForm, LoginForm, PlainForm
from mailer.web.helpers import client_ip
from mailer.web.limits import limiter, retry_after_header, retry_after_text

PENDING_SECONDS = 300


def _throttled(wait: int, form, template: str):
    form.form_errors.append(f"Too many attempts. Please try again in {retry_after_text(wait)}.")
    return render_template(template, form=form), 429, retry_after_header(Verdict(False, wait))


def _after_login(user: StaffUser, nxt: str | None):
    s = db()
    staff_login.logged_in(s, user, ip=client_ip(), when=utcnow())
    s.commit()
    start_login(user)
    if must_enrol(user):
        return redirect(url_for("console.enrol"))
    return redirect(safe_next(nxt) or url_for("console.dashboard"))


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if g.staff is not None and request.method == "GET":
        return redirect(url_for("console.dashboard"))
    form = LoginForm()
    nxt = request.args.get("next")
    if request.args.get("expired") and request.method == "GET":
        form.form_errors.append("Your session ended. Please log in again.")
    if not form.validate_on_submit():
        return render_template("console/login.html", form=form), (400 if request.method == "POST" else 200)
    wait = staff_login.throttle(limiter(), form.username.data, client_ip())
    if wait:
        return _throttled(wait, form, "console/login.html")
    s = db()
    attempt = staff_login.check_password(s, form.username.data, form.password.data, ip=client_ip(), when=utcnow())
    s.commit()
    if attempt.user is None:
        form.form_errors.append(attempt.message)
        return render_template("console/login.html", form=form), 401
    user = attempt.user
    if user.totp_secret:
        end_login()
        session["console_pending"] = {"id": user.id, "ver": user.session_version, "at": now(), "next": safe_next(nxt)}
        return redirect(url_for("console.login_code"))
    return _after_login(user, nxt)


@bp.route("/login/code", methods=["GET", "POST"])
@public
def login_code():
    pending = session.get("console_pending")
    user = db().get(StaffUser, pending["id"]) if pending else None
    if (
        user is None
        or user.disabled
        or user.session_version != pending.get("ver")
        or now() - pending.get("at", 0) > PENDING_SECONDS
    ):
        session.pop("console_pending", None)
        return redirect(url_for("console.login", expired=1 if pending else None))
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("console/code.html", form=form), (400 if request.method == "POST" else 200)
    wait = staff_login.throttle(limiter(), user.username, client_ip())
    if wait:
        return _throttled(wait, form, "console/code.html")
    s = db()
    attempt = staff_login.check_second_factor(s, user, form.code.data, ip=client_ip(), now=now(), when=utcnow())
    s.commit()
    if attempt.user is None:
        form.code.errors.append(attempt.message)
        return render_template("console/code.html", form=form), 401
    return _after_login(user, pending.get("next"))


@bp.post("/logout")
@public
def logout():
    """Works logged out too (an expired session), so the button never shows an error."""
    if PlainForm().validate_on_submit() and g.staff is not None:
        s = db()
        audit.record(s, g.staff, "logout", g.staff, ip=client_ip())
        s.commit()
    end_login()
    return redirect(url_for("console.login"))


@bp.route("/two-factor", methods=["GET", "POST"])
@require(DASHBOARD, enrolling=True)
def enrol():
    """Set up TOTP: scan the QR code (inline SVG; no script, no outside service), type one
    code to prove it works, then see the recovery codes once."""
    user = g.staff
    if user.totp_secret:
        return render_template(
            "console/message.html",
            title="Two-factor is already set up",
            message="To set it up again (a new phone), ask an admin to reset your two-factor.",
        )
    secret = session.get("console_enrol_secret") or twofactor.new_secret()
    session["console_enrol_secret"] = secret
    form = EnrolForm()
    if form.validate_on_submit():
        if twofactor.accept_totp(user, form.code.data, now(), secret=secret):
            s = db()
            twofactor.set_secret(s, user, secret)
            codes = twofactor.issue_recovery_codes(user)
            audit.record(s, user, "staff.enrol_2fa", user, after=user.summary(), ip=client_ip())
            s.commit()
            session.pop("console_enrol_secret", None)
            return render_template("console/recovery_codes.html", codes=codes)
        form.code.errors.append("That code is not right. Check the time on your phone and try the next one.")
    uri = twofactor.provisioning_uri(secret, user.username)
    qr = segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your authenticator app")
    status = 400 if form.errors else 200
    return render_template(
        "console/enrol.html", form=form, qr=qr, secret=secret, required=needs_two_factor(user.role)
    ), status
