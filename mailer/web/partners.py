"""The partner submission form, reached through each partner's secret link.

``/submit/<secret>`` shows and takes the form; ``/submit/<secret>/preview`` renders the
item as the digest will show it (the page's script calls it as the partner types; without
script the "Preview" button posts the whole form and gets the page back with the preview).

Limits (per hour, shared with the API): ``PARTNER_SUBMISSIONS_PER_HOUR`` items per
partner, past which the form comes back with a 429 and ``Retry-After`` and nothing is
stored; ``PARTNER_RECEIPTS_PER_HOUR`` notices per contact address, past which the item is
kept but its receipt is not emailed. Notices go to the partner's registered contact only
(see :mod:`mailer.content.notices`).
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, SelectField, StringField, TextAreaField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from mailer.actors.partners import send_partner_notice
from mailer.content.intake import SUMMARY_MAX, TITLE_MAX, ItemDraft, check_draft, recent_duplicate, submit_item
from mailer.content.models import ITEM_KINDS, Topic
from mailer.content.notices import RECEIPT, decision_kind, notice_address
from mailer.content.partners import partner_for_secret
from mailer.runtime import current as rt
from mailer.validation import InvalidInput
from mailer.web.forms import CheckboxesField
from mailer.web.helpers import error_on
from mailer.web.limits import keyed, retry_after_text, wait_for

bp = Blueprint("partners", __name__)


class ItemForm(FlaskForm):
    kind = SelectField("Kind of item", choices=[SelectChoice(k, v) for k, v in ITEM_KINDS.items()])
    title = StringField("Title", render_kw={"maxlength": TITLE_MAX, "autocomplete": "off"})
    summary = TextAreaField(
        f"Summary (up to {SUMMARY_MAX} characters; shown in the digest)",
        render_kw={"maxlength": SUMMARY_MAX, "rows": 4},
    )
    body = TextAreaField(
        "Full text (optional; Markdown: **bold**, *italic*, [link](https://...), lists)", render_kw={"rows": 8}
    )
    link = StringField("Link to read more (https://...)")
    image_url = StringField("Image address (optional, https://...)")
    image_alt = StringField("Image description for people who cannot see it (required with an image)")
    topics = CheckboxesField("Topics", coerce=int)
    event_date = DateField("Event date", validators=[Optional()])
    event_time = TimeField("Start time (optional)", validators=[Optional()])
    event_place = StringField('Where (a place, or "online")')
    publish_from = DateField("Not before (optional embargo)", validators=[Optional()])
    publish_until = DateField("Not after (optional expiry)", validators=[Optional()])
    contact_email = StringField(
        "Your email, for the editors to reply to you (receipts go to your organisation's registered contact)"
    )

    def draft(self) -> ItemDraft:
        iso = lambda v: v.isoformat() if v else ""  # noqa: E731
        return ItemDraft(
            title=self.title.data or "",
            summary=self.summary.data or "",
            link=self.link.data or "",
            kind=self.kind.data or "",
            topic_ids=self.topics.data or [],
            body=self.body.data or "",
            image_url=self.image_url.data or "",
            image_alt=self.image_alt.data or "",
            event_date=iso(self.event_date.data),
            event_time=self.event_time.data.strftime("%H:%M") if self.event_time.data else "",
            event_place=self.event_place.data or "",
            publish_from=iso(self.publish_from.data),
            publish_until=iso(self.publish_until.data),
            contact_email=self.contact_email.data or "",
        )


def _not_recognised():
    return render_template(
        "error.html",
        title="Submission link not recognised",
        message="This submission link is not valid or has been replaced. Ask the campaign team for your current link.",
    ), 404


def _form(session, partner) -> ItemForm:
    form = ItemForm()
    topics = list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))
    form.topics.choices = [SelectChoice(t.id, t.name) for t in topics]
    if request.method == "GET" and partner.contact_email:
        form.contact_email.data = partner.contact_email
    return form


def submission_wait(partner) -> int:
    """Count one submission for ``partner`` (form and API together): 0 if within
    ``PARTNER_SUBMISSIONS_PER_HOUR``, else the seconds until it may submit again."""
    return wait_for((f"partner-submit:{partner.id}", rt().settings.partner_submissions_per_hour))


def too_many_message(partner, wait: int) -> str:
    limit = rt().settings.partner_submissions_per_hour
    return (
        f"{partner.name} has sent {limit} items this hour, the most we take in an hour. "
        f"Nothing was stored: please send this item again in {retry_after_text(wait)}."
    )


def notice_allowed(address: str | None) -> bool:
    """Count one notice to ``address`` (the partner's registered contact); False when there
    is nobody to tell or it has had ``PARTNER_RECEIPTS_PER_HOUR`` this hour (the item is
    kept either way; only the email is skipped)."""
    if not address:
        return False
    return not wait_for((f"receipt-to:{keyed(address.casefold())}", rt().settings.partner_receipts_per_hour))


def queue_notice(kind: str, item_id: int) -> None:
    """Queue the notice about an item (call after its transaction committed)."""
    rt().queue.send(send_partner_notice, kind, item_id)


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
                return render_template(
                    "partners/submit.html", form=form, partner=partner, secret=secret, preview=checked
                )
            if not draft.contact_email.strip():
                raise InvalidInput("contact_email", "is required, so the editor can reply.")
            earlier = recent_duplicate(s, partner, draft)
            if earlier is not None:  # sent twice (double click, back and resubmit): one item
                return render_template("partners/submitted.html", item=earlier, partner=partner, duplicate=True)
            item = submit_item(s, partner, draft, today=date.today(), source="form")
        except InvalidInput as err:
            error_on(form, err)
            page = render_template("partners/submit.html", form=form, partner=partner, secret=secret)
            s.rollback()  # checks run before any write; this is belt and braces
            return page, 400
        # Counted only once the item passed every check, so a typo costs no allowance.
        wait = submission_wait(partner)
        if wait:  # the page keeps what they typed; nothing is stored
            form.form_errors.append(too_many_message(partner, wait))
            page = render_template("partners/submit.html", form=form, partner=partner, secret=secret)
            s.rollback()
            return page, 429, {"Retry-After": str(wait)}
        item_id, address = item.id, notice_address(item)
        notice = decision_kind(item) or RECEIPT  # a trusted partner's item is approved at once
        emailed = notice_allowed(address)
        page = render_template(
            "partners/submitted.html", item=item, partner=partner, emailed=emailed, registered=bool(address)
        )
    if emailed:
        queue_notice(notice, item_id)
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
            return render_template(
                "partners/_preview.html", error=err, label=label.text if label else err.field, partner=partner
            ), 200
        return render_template("partners/_preview.html", item=checked, partner=partner)
