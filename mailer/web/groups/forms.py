"""The group pages' forms (Flask-WTF for CSRF and rendering; the rules live in
:mod:`mailer.groups.service`)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

DELIVERY_CHOICES = [
    SelectChoice("every", "Every message, as it is sent"),
    SelectChoice("digest", "One email a day listing the day's messages"),
    SelectChoice("web", "No email: I read the group on the web"),
]


class JoinForm(FlaskForm):
    email = StringField("Email address", validators=[InputRequired("Enter your email address."), Length(max=320)])
    name = StringField("Your name (shown with your posts)", validators=[Length(max=120)])
    delivery = RadioField("How would you like to get the group's messages?", choices=DELIVERY_CHOICES, default="every")
    consent = BooleanField(
        "I agree to receive this group's messages by email and to my posts being shared with its members.",
        validators=[InputRequired("Tick the box to agree, or the group cannot send you its messages.")],
    )


class DeliveryForm(FlaskForm):
    delivery = RadioField("How you get the group's messages", choices=DELIVERY_CHOICES)


class DecisionForm(FlaskForm):
    """One held post's decision: the button pressed is ``action``; a rejection's reason is
    told to the sender."""

    reason = StringField("Reason (told to the sender when you reject)", validators=[Length(max=500)])
