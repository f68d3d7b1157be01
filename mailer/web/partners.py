"""The partner submission form, reached through each partner's secret link.

``/submit/<secret>`` shows and takes the form; ``/submit/<secret>/preview`` renders the
item as the digest will show it (the page's script calls it as the partner types; without
script the "Preview" button posts the whole form and gets the page back with the preview).
"""
from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, SelectField, StringField, TextAreaField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from mailer.content.intake import SUMMARY_MAX, TITLE_MAX, ItemDraft, check_draft, recent_duplicate, submit_item
from mailer.content.models import ITEM_KINDS, Topic
from mailer.content.notices import RECEIPT, decision_kind
from mailer.content.partners import partner_for_secret
from mailer.queue import enqueue
from mailer.validation import InvalidInput
from mailer.web.helpers import rt
from subscribers.forms import CheckboxesField

bp = Blueprint("partners", __name__)


class ItemForm(FlaskForm):
    kind = SelectField("Kind of item", choices=[SelectChoice(k, v) for k, v in ITEM_KINDS.items()])
    title = StringField("Title", render_kw={"maxlength": TITLE_MAX, "autocomplete": "off"})
    summary = TextAreaField(f"Summary (up to {SUMMARY_MAX} characters; shown in the digest)",
                            render_kw={"maxlength": SUMMARY_MAX, "rows": 4})
    body = TextAreaField("Full text (optional; Markdown: **bold**, *italic*, [link](https://...), lists)",
                         render_kw={"rows": 8})
    link = StringField("Link to read more (https://...)")
    image_url = StringField("Image address (optional, https://...)")
    image_alt = StringField("Image description for people who cannot see it (required with an image)")
    topics = CheckboxesField("Topics", coerce=int)
    event_date = DateField("Event date", validators=[Optional()])
    event_time = TimeField("Start time (optional)", validators=[Optional()])
    event_place = StringField("Where (a place, or \"online\")")
    publish_from = DateField("Not before (optional embargo)", validators=[Optional()])
    publish_until = DateField("Not after (optional expiry)", validators=[Optional()])
    contact_email = StringField("Your email, for the editor's reply")

    def draft(self) -> ItemDraft:
        iso = lambda v: v.isoformat() if v else ""  # noqa: E731
        return ItemDraft(
            title=self.title.data or "", summary=self.summary.data or "", link=self.link.data or "",
            kind=self.kind.data or "", topic_ids=self.topics.data or [], body=self.body.data or "",
            image_url=self.image_url.data or "", image_alt=self.image_alt.data or "",
            event_date=iso(self.event_date.data),
            event_time=self.event_time.data.strftime("%H:%M") if self.event_time.data else "",
            event_place=self.event_place.data or "", publish_from=iso(self.publish_from.data),
            publish_until=iso(self.publish_until.data), contact_email=self.contact_email.data or "",
        )


def _not_recognised():
    return render_template("error.html", title="Submission link not recognised",
                           message="This submission link is not valid or has been "
                                   "replaced. Ask the campaign team for your current link."), 404


def _form(session, partner) -> ItemForm:
    form = ItemForm()
    topics = list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))
    form.topics.choices = [SelectChoice(t.id, t.name) for t in topics]
    if request.method == "GET" and partner.contact_email:
        form.contact_email.data = partner.contact_email
    return form


def _error_on(form: ItemForm, err: InvalidInput) -> None:
    field = getattr(form, err.field, None)
    if field is None:
        form.form_errors.append(f"{err.field}: {err.message}")
    else:
        field.errors = [*field.errors, err.message]


@bp.route("/submit/<secret>", methods=["GET", "POST"])
def submit(secret: str):
    with rt().db.transaction() as s:
        partner = partner_for_secret(s, secret)
        if partner is None:
            return _not_recognised()
        form = _form(s, partner)
        if request.method == "GET":
            return render_template("partners/submit.html", form=form, partner=partner, secret=secret)
        if not form.validate_on_submit():
            return render_template("partners/submit.html", form=form, partner=partner, secret=secret), 400
        draft = form.draft()
        try:
            if "preview" in request.form:
                checked = check_draft(s, draft, today=date.today())
                return render_template("partners/submit.html", form=form, partner=partner,
                                       secret=secret, preview=checked)
            if not draft.contact_email.strip():
                raise InvalidInput("contact_email", "is required, so the editor can reply.")
            earlier = recent_duplicate(s, partner, draft)
            if earlier is not None:  # sent twice (double click, back and resubmit): one item
                return render_template("partners/submitted.html", item=earlier, partner=partner,
                                       duplicate=True)
            item = submit_item(s, partner, draft, today=date.today(), source="form")
        except InvalidInput as err:
            _error_on(form, err)
            page = render_template("partners/submit.html", form=form, partner=partner, secret=secret)
            s.rollback()  # checks run before any write; this is belt and braces
            return page, 400
        item_id, contact = item.id, item.contact_email
        notice = decision_kind(item) or RECEIPT  # a trusted partner's item is approved at once
        page = render_template("partners/submitted.html", item=item, partner=partner)
    if contact:
        from mailer.delivery.partner_actors import send_partner_notice

        enqueue(send_partner_notice, notice, item_id)
    return page


@bp.route("/submit/<secret>/preview", methods=["POST"])
def preview(secret: str):
    """The item as the digest will show it, or the first problem with it (HTML fragment)."""
    with rt().db.transaction() as s:
        partner = partner_for_secret(s, secret)
        if partner is None:
            return _not_recognised()
        form = _form(s, partner)
        form.validate()  # fills .data; CSRF is checked by the app for every POST
        try:
            checked = check_draft(s, form.draft(), today=date.today())
        except InvalidInput as err:
            label = getattr(getattr(form, err.field, None), "label", None)
            return render_template("partners/_preview.html", error=err,
                                   label=label.text if label else err.field, partner=partner), 200
        return render_template("partners/_preview.html", item=checked, partner=partner)
