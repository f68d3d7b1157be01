"""Forms of the moderation inbox (Flask-WTF; the app checks every POST's CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from mailer.content.models import ITEM_KINDS, ITEM_STATUSES
from mailer.content.reasons import TEXT_MAX, TITLE_MAX
from mailer.web.partners import ItemForm

STATUS_LABELS = {
    "submitted": "Waiting (held)",
    "approved": "Approved",
    "rejected": "Rejected",
    "withdrawn": "Withdrawn",
}
OTHER = "other"


class InboxFilter(FlaskForm):
    """A GET form: it changes nothing, so it carries no CSRF token. Choices of partner and
    topic are filled per request."""

    class Meta:
        csrf = False

    source = SelectField(
        "What",
        choices=[
            SelectChoice("", "Everything"),
            SelectChoice("item", "Partner items"),
            SelectChoice("post", "Group posts"),
        ],
    )
    status = SelectField(
        "Status",
        choices=[SelectChoice(s, STATUS_LABELS[s]) for s in ITEM_STATUSES] + [SelectChoice("all", "Any status")],
        default="submitted",
    )
    partner = SelectField("Partner", coerce=str)
    kind = SelectField(
        "Kind", choices=[SelectChoice("", "Any kind")] + [SelectChoice(k, v) for k, v in ITEM_KINDS.items()]
    )
    topic = SelectField("Topic", coerce=str)
    group = SelectField("Group", coerce=str)


class EditItemForm(ItemForm):
    """The partner's form, as an editor fills it in, plus a note for the log."""

    contact_email = StringField("Contact typed by the partner (for replying by hand)")
    note = StringField("Why you changed it (kept in the item's log; optional)", validators=[Length(max=500)])


class RejectForm(FlaskForm):
    reason = SelectField("Reason", coerce=str, validators=[DataRequired("Choose a reason.")])
    extra = TextAreaField(
        "Words of your own for the partner (added after the reason; required for Other)",
        validators=[Length(max=TEXT_MAX)],
        render_kw={"rows": 3},
    )


class WithdrawForm(FlaskForm):
    reason = StringField("Why (kept in the item's log)", validators=[Length(max=500)])


class ReasonForm(FlaskForm):
    title = StringField(
        "Short name (shown to moderators)",
        validators=[DataRequired("Give the reason a short name.")],
        render_kw={"maxlength": TITLE_MAX},
    )
    text = TextAreaField(
        "What the partner is told",
        validators=[DataRequired("Write what the partner will be told.")],
        render_kw={"rows": 3, "maxlength": TEXT_MAX},
    )
    position = IntegerField("Order in the list (lower first)", validators=[Optional()])
