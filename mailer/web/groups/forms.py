"""The group pages' forms (Flask-WTF for CSRF and rendering; the rules live in
:mod:`mailer.groups.service`)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField, TextAreaField
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


class NewThreadForm(FlaskForm):
    """A member starts a thread from the web (the rules are the same as by email)."""

    subject = StringField("Subject", validators=[InputRequired("Give your message a subject."), Length(max=200)])
    body = TextAreaField("Message", validators=[InputRequired("Write your message."), Length(max=20_000)])


class ReplyForm(FlaskForm):
    body = TextAreaField("Your reply", validators=[InputRequired("Write your reply."), Length(max=20_000)])


class RemoveForm(FlaskForm):
    """A moderator takes a post out of the archive."""

    reason = StringField("Reason (kept in the audit log)", validators=[Length(max=300)])
