"""The partner submission form, reached through each partner's secret link."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from mailer.content.intake import SUMMARY_MAX, ItemDraft, submit_item
from mailer.content.models import ITEM_KINDS, Topic
from mailer.content.partners import partner_for_secret
from mailer.validation import InvalidInput
from mailer.web.helpers import rt
from subscribers.forms import CheckboxesField

bp = Blueprint("partners", __name__)


class ItemForm(FlaskForm):
    kind = SelectField("Kind of item", choices=[SelectChoice(k, v) for k, v in ITEM_KINDS.items()])
    title = StringField("Title", validators=[Length(max=200)])
    summary = TextAreaField(f"Summary (up to {SUMMARY_MAX} characters)")
    link = StringField("Link to read more (https://...)")
    topics = CheckboxesField("Topics", coerce=int)


@bp.route("/submit/<secret>", methods=["GET", "POST"])
def submit(secret: str):
    with rt().db.transaction() as s:
        partner = partner_for_secret(s, secret)
        if partner is None:
            return render_template("error.html", title="Submission link not recognised",
                                   message="This submission link is not valid or has been "
                                           "replaced. Ask the campaign team for your current link."), 404
        topics = list(s.scalars(select(Topic).order_by(Topic.position, Topic.id)))
        form = ItemForm()
        form.topics.choices = [SelectChoice(t.id, t.name) for t in topics]
        if request.method == "GET" or not form.validate_on_submit():
            status = 400 if request.method == "POST" else 200
            return render_template("partners/submit.html", form=form, partner=partner), status
        draft = ItemDraft(title=form.title.data, summary=form.summary.data, link=form.link.data,
                          kind=form.kind.data, topic_ids=form.topics.data or [])
        try:
            with s.begin_nested():  # a refusal undoes only this attempt
                item = submit_item(s, partner, draft, today=date.today())
        except InvalidInput as err:
            field = getattr(form, err.field)
            field.errors = [*field.errors, err.message]
            return render_template("partners/submit.html", form=form, partner=partner), 400
        return render_template("partners/submitted.html", item=item, partner=partner)
