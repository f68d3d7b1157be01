"""Forms of the partners and topics screens (Flask-WTF; the app checks every POST's CSRF
token). The domain checks the values; these only carry them."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length


class PartnerForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Give the partner a name."), Length(max=160)])
    website = StringField("Website (https://...)", validators=[Length(max=2000)])
    description = TextAreaField(
        "Description (up to 500 characters)", validators=[Length(max=500)], render_kw={"rows": 2}
    )
    logo_url = StringField("Logo address (https://...)", validators=[Length(max=2000)])
    contact_email = StringField(
        "Registered contact (receipts and decisions go only here)", validators=[Length(max=320)]
    )
    feed_url = StringField("RSS or Atom feed (https://...; empty for none)", validators=[Length(max=2000)])
    trusted = BooleanField("Trusted: their items skip moderation")
    active = BooleanField("Active: their link, tokens and feed work")


class NewPartnerForm(PartnerForm):
    slug = StringField(
        "Short name for links and commands (like race-equality-foundation; cannot change later)",
        validators=[DataRequired("Give the partner a short name."), Length(max=60)],
    )


class TokenForm(FlaskForm):
    label = StringField("What the token is for (e.g. their website's CMS)", validators=[Length(max=120)])


class TopicForm(FlaskForm):
    slug = StringField(
        "Short name for imports and feeds (like heart-health; cannot change later)", validators=[Length(max=60)]
    )
    name = StringField("Name", validators=[DataRequired("Give the topic a name."), Length(max=120)])
    description = TextAreaField("What it covers", validators=[Length(max=500)], render_kw={"rows": 2})
