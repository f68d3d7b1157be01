"""A person's own account: change their password (the current one required).

Attempts are throttled like logins (a stolen, still-open session must not become a way
to guess the password) and audited; a change ends every other session of theirs.
"""

from __future__ import annotations

from flask import g, render_template
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from mailer.staff import login as staff_login
from mailer.staff.accounts import change_own_password
from mailer.staff.passwords import MIN_LENGTH
from mailer.staff.permissions import DASHBOARD
from mailer.validation import InvalidInput
from mailer.web.console.access import db, require, start_login
from mailer.web.console.blueprint import bp
from mailer.web.helpers import client_ip
from mailer.web.limits import limiter, retry_after_text


class PasswordForm(FlaskForm):
    current = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password."), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
    new = PasswordField(
        f"New password (at least {MIN_LENGTH} characters)",
        validators=[DataRequired("Enter a new password."), Length(max=256)],
        render_kw={"autocomplete": "new-password"},
    )
    again = PasswordField(
        "New password again",
        validators=[DataRequired("Type the new password again."), EqualTo("new", "The two new passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


@bp.route("/account", methods=["GET", "POST"])
@require(DASHBOARD)
def account():
    form = PasswordForm()
    if not form.validate_on_submit():
        return render_template("console/account.html", form=form), (400 if form.errors else 200)
    user = g.staff
    wait = staff_login.throttle(limiter(), user.username, client_ip())
    if wait:
        form.form_errors.append(f"Too many attempts. Please try again in {retry_after_text(wait)}.")
        return render_template("console/account.html", form=form), 429
    s = db()
    try:
        change_own_password(s, user, form.current.data, form.new.data, ip=client_ip())
    except InvalidInput as err:
        s.commit()  # the refusal changed nothing but the audit log, which keeps it
        getattr(form, err.field, form.new).errors.append(err.message)
        return render_template("console/account.html", form=form), 400
    s.commit()
    start_login(user)  # this browser carries on; every other session of theirs has ended
    return render_template("console/account.html", form=PasswordForm(formdata=None), changed=True)
