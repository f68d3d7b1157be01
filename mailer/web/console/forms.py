"""The console's forms (Flask-WTF: each carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from mailer.staff.permissions import ROLES


class LoginForm(FlaskForm):
    username = StringField(
        "User name",
        validators=[DataRequired("Enter your user name."), Length(max=60)],
        render_kw={"autocomplete": "username", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )


class CodeForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[DataRequired("Enter a code."), Length(max=40)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text"},
    )


class EnrolForm(FlaskForm):
    code = StringField(
        "The 6-digit code your app shows now",
        validators=[DataRequired("Enter the code from your app."), Length(max=10)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class PlainForm(FlaskForm):
    """A form that is only a button: logout, disable."""


class CreateStaffForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired("Enter a user name."), Length(max=60)])
    role = SelectField("Role", choices=[SelectChoice(r, r.capitalize()) for r in ROLES])


class ResetForm(FlaskForm):
    reset_2fa = BooleanField("Also remove two-factor (they enrol again at their next login)")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r, r.capitalize()) for r in ROLES])
