"""The editions screens' forms (Flask-WTF: each POST form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class BuildForm(FlaskForm):
    period = StringField(
        "Month (YYYY-MM)",
        validators=[DataRequired("Enter the month, like 2026-12."), Length(max=7)],
        render_kw={"inputmode": "numeric", "placeholder": "2026-12"},
    )


class EditForm(FlaskForm):
    """Subject, preheader, intro and featured item; item positions come as ``pos-<id>``
    fields the template writes per item (their number varies by edition)."""

    subject = StringField("Subject", validators=[DataRequired("Enter a subject."), Length(max=200)])
    preheader = StringField(
        "Preheader (the line inboxes show after the subject; empty: one is generated)",
        validators=[Optional(), Length(max=200)],
    )
    intro = TextAreaField("Editor's note at the top", validators=[Optional(), Length(max=2000)])
    featured = SelectField("Featured item (shown first)", choices=[], validate_choice=False)


class RejectForm(FlaskForm):
    reason = TextAreaField(
        "What needs to change", validators=[DataRequired("Say what needs to change."), Length(max=1000)]
    )


class TestSendForm(FlaskForm):
    to = StringField(
        "Send this copy as a test to",
        validators=[DataRequired("Enter an address to send the test to."), Length(max=320)],
        render_kw={"type": "email", "autocomplete": "email"},
    )


class ScheduleForm(FlaskForm):
    when = DateTimeLocalField(
        "Send at", format="%Y-%m-%dT%H:%M", validators=[DataRequired("Enter a date and time, like 2026-12-01 09:00.")]
    )


class PauseForm(FlaskForm):
    reason = StringField("Reason (optional)", validators=[Optional(), Length(max=200)])


class PreviewChoice(FlaskForm):
    """A GET form: it changes nothing, so it carries no CSRF token."""

    class Meta:
        csrf = False

    subscriber = StringField("As the subscriber with this address", validators=[Optional(), Length(max=320)])
