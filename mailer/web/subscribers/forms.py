"""The subscriber pages' forms (Flask-WTF for CSRF and rendering; the rules live in
:mod:`subscribers.service`)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from mailer.content.models import Partner, Topic
from mailer.web.forms import CheckboxesField
from subscribers.models import ORGANISATION_TYPES


class PreferencesForm(FlaskForm):
    name = StringField("Your name", validators=[Length(max=120)])
    organisation = StringField("Organisation", validators=[Length(max=200)])
    organisation_type = SelectField(
        "Type of organisation",
        choices=[SelectChoice("", "Choose one")] + [SelectChoice(v, label) for v, label in ORGANISATION_TYPES],
        validate_choice=False,  # the service refuses unknown values with its own message
    )
    practice_code = StringField(
        "Practice or organisation code (optional)",
        description="The NHS ODS code, for example A81001 for a GP practice.",
        validators=[Length(max=10)],
    )
    topics = CheckboxesField("Topics", coerce=int)
    partners = CheckboxesField("Partners", coerce=int)

    def set_choices(self, topics: list[Topic], partners: list[Partner]) -> PreferencesForm:
        self.topics.choices = [SelectChoice(t.id, t.name) for t in topics]
        self.partners.choices = [SelectChoice(p.id, p.name) for p in partners]
        return self


class SubscribeForm(PreferencesForm):
    email = StringField("Email address", validators=[InputRequired("Enter your email address."), Length(max=320)])


class LinkRequestForm(FlaskForm):
    email = StringField("Email address", validators=[InputRequired("Enter your email address."), Length(max=320)])


class PauseForm(FlaskForm):
    until = DateField(
        "Pause my digest until", validators=[InputRequired("Choose the date your digest should start again.")]
    )


class ButtonForm(FlaskForm):
    """A form with only its CSRF token, behind a button that changes something."""


# A group member's delivery choice. Here, not in the group pages, because one preference
# page shows the digest's choices and every group's (mailer.web.subscribers.common).
DELIVERY_CHOICES = [
    SelectChoice("every", "Every message, as it is sent"),
    SelectChoice("digest", "One email a day listing the day's messages"),
    SelectChoice("web", "No email: I read the group on the web"),
]


class DeliveryForm(FlaskForm):
    """Prefixed per membership (``m<member id>-``), so one page holds a form per group."""

    delivery = RadioField("How you get the group's messages", choices=DELIVERY_CHOICES)


def delivery_form(member, *, posted: bool = False) -> DeliveryForm:
    """``member``'s form: as posted (``posted``), or showing their current choice."""
    if posted:
        return DeliveryForm(prefix=f"m{member.id}")
    return DeliveryForm(prefix=f"m{member.id}", formdata=None, delivery=member.delivery)
