"""Forms of the group screens (Flask-WTF; the app checks every POST's CSRF token). The
domain checks the values; these only carry them."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from mailer.groups.service import BASES

VISIBILITY = [
    SelectChoice("public", "Public archive"),
    SelectChoice("members", "Members-only archive"),
    SelectChoice("announce", "Announce-only (only owners post)"),
]
POLICY = [
    SelectChoice("open", "Members post freely; everyone else is held"),
    SelectChoice("moderated", "Members' posts are held for a moderator"),
    SelectChoice("all-moderated", "Every post is held for a moderator"),
    SelectChoice("announce-only", "Announce-only: only owners and moderators post"),
]
ROLE = [SelectChoice("member", "Member"), SelectChoice("moderator", "Moderator"), SelectChoice("owner", "Owner")]
DELIVERY = [
    SelectChoice("every", "Every message"),
    SelectChoice("digest", "Daily digest"),
    SelectChoice("web", "Web only"),
]
BASIS = [SelectChoice(b, b.replace("-", " ").capitalize()) for b in BASES]


class GroupForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Give the group a name."), Length(max=120)])
    description = TextAreaField(
        "What the group is for (its page shows it)", validators=[Length(max=2000)], render_kw={"rows": 3}
    )
    visibility = SelectField("Who may read the archive", choices=VISIBILITY)
    policy = SelectField("Posting policy", choices=POLICY)
    max_bytes = IntegerField(
        "Largest post accepted without a moderator's look (bytes)",
        validators=[DataRequired("Give a size in bytes."), NumberRange(min=1000, message="At least 1000 bytes.")],
        default=2_000_000,
    )
    allow_attachments = BooleanField("Take posts with attachments (otherwise they are held)", default=True)


class NewGroupForm(GroupForm):
    slug = StringField(
        "Address: the part before the @ (like bme-network; cannot change later)",
        validators=[DataRequired("Give the group an address."), Length(max=60)],
    )
    owners = TextAreaField(
        "Owners' addresses (one a line; added as members with the basis 'contract')", render_kw={"rows": 2}
    )
    moderators = TextAreaField("Moderators' addresses (one a line)", render_kw={"rows": 2})


class AddMembersForm(FlaskForm):
    emails = TextAreaField(
        "Addresses to add (one a line, up to 500)",
        validators=[DataRequired("Type at least one address.")],
        render_kw={"rows": 4},
    )
    basis = SelectField("Why you may add them (kept in each one's consent record)", choices=BASIS)
    role = SelectField("Role", choices=ROLE)
    delivery = SelectField("How they get messages", choices=DELIVERY)


class MemberForm(FlaskForm):
    role = SelectField("Role", choices=ROLE)
    delivery = SelectField("Delivery", choices=DELIVERY)


class SenderForm(FlaskForm):
    email = StringField("Address", validators=[DataRequired("Type an address."), Length(max=320)])
    action = SelectField(
        "Rule",
        choices=[
            SelectChoice("trust", "Trust: never held for the posting policy"),
            SelectChoice("ban", "Ban: drop their mail"),
        ],
    )


class MemberSearch(FlaskForm):
    """A GET form: it changes nothing, so it carries no CSRF token."""

    class Meta:
        csrf = False

    q = StringField("Address or name contains", validators=[Optional(), Length(max=100)])
    status = SelectField(
        "State",
        choices=[
            SelectChoice("active", "Members"),
            SelectChoice("pending", "Waiting to confirm"),
            SelectChoice("left", "Left"),
            SelectChoice("removed", "Removed"),
            SelectChoice("all", "Any state"),
        ],
        default="active",
    )
