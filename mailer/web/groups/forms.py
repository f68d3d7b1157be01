"""The group pages' forms (Flask-WTF for CSRF and rendering; the rules live in
:mod:`mailer.groups.service`)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField
from wtforms.validators import InputRequired, Length

from mailer.web.subscribers.forms import DELIVERY_CHOICES, DeliveryForm  # noqa: F401  (one preference page)


class JoinForm(FlaskForm):
    email = StringField("Email address", validators=[InputRequired("Enter your email address."), Length(max=320)])
    name = StringField("Your name (shown with your posts)", validators=[Length(max=120)])
    delivery = RadioField("How would you like to get the group's messages?", choices=DELIVERY_CHOICES, default="every")
    consent = BooleanField(
        "I agree to receive this group's messages by email and to my posts being shared with its members.",
        validators=[InputRequired("Tick the box to agree, or the group cannot send you its messages.")],
    )


class DecisionForm(FlaskForm):
    """One held post's decision: the button pressed is ``action``; a rejection's reason is
    told to the sender."""

    reason = StringField("Reason (told to the sender when you reject)", validators=[Length(max=500)])
