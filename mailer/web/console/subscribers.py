"""Subscribers in the console: search, a profile, suppress, erase, resend a link, export.

A thin shell: the search is :mod:`subscribers.search`, the actions are the domain's own
functions (:mod:`subscribers.service`, :mod:`subscribers.rights`), and every change is
written to the audit log in the same transaction. Audit entries name the subscriber by id
only, never by address or name: the log is append-only and must not keep what an erasure
removes.
"""

from __future__ import annotations

import io

from flask import Response, abort, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from mailer.actors.transactional import send_transactional
from mailer.content.models import Partner, Topic
from mailer.db import utcnow
from mailer.delivery.history import recent_deliveries
from mailer.delivery.suppression import bounces_of
from mailer.inbound import erasure
from mailer.mail.outbox import remove_messages_to
from mailer.runtime import current as rt
from mailer.staff import audit
from mailer.staff.permissions import SUBSCRIBERS_MANAGE
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.helpers import client_ip, page_number
from subscribers import service, suppression
from subscribers.export import export_csv
from subscribers.models import ORGANISATION_TYPES, Subscriber
from subscribers.search import STATUSES, Filter, search

PER_PAGE = 50
SUPPRESS_REASONS = (
    ("unsubscribed", "They asked to stop (unsubscribed)"),
    ("hard_bounce", "The mailbox does not exist (hard bounce)"),
    ("complaint", "They reported our mail as spam (complaint)"),
)


class SearchForm(FlaskForm):
    """A GET form: it changes nothing, so it carries no CSRF token."""

    class Meta:
        csrf = False

    q = StringField("Address, name or organisation contains", validators=[Length(max=100)])
    practice_code = StringField("Practice code", validators=[Length(max=10)])
    # Unknown values in the selects are ignored by to_filter, not errors: it is a search.
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any")] + [SelectChoice(s, s.capitalize()) for s in STATUSES],
        validate_choice=False,
    )
    topic = SelectField("Topic", coerce=str, validate_choice=False)
    partner = SelectField("Partner followed", coerce=str, validate_choice=False)

    def set_catalogue(self, session) -> SearchForm:
        topics = session.scalars(select(Topic).order_by(Topic.position, Topic.id))
        partners = session.scalars(select(Partner).order_by(Partner.name))
        self.topic.choices = [SelectChoice("", "Any")] + [SelectChoice(str(t.id), t.name) for t in topics]
        self.partner.choices = [SelectChoice("", "Any")] + [SelectChoice(str(p.id), p.name) for p in partners]
        return self

    def to_filter(self) -> Filter:
        def ident(value) -> int | None:
            return int(value) if value and str(value).isdigit() else None

        status = self.status.data if self.status.data in STATUSES else ""
        return Filter(
            text=(self.q.data or "").strip(),
            practice_code=(self.practice_code.data or "").strip(),
            status=status,
            topic_id=ident(self.topic.data),
            partner_id=ident(self.partner.data),
        )

    def args(self) -> dict:
        """The filter as query arguments (to keep it across pages and into the export)."""
        values = {
            "q": self.q.data,
            "practice_code": self.practice_code.data,
            "status": self.status.data,
            "topic": self.topic.data,
            "partner": self.partner.data,
        }
        return {k: v for k, v in values.items() if v}


class SuppressForm(FlaskForm):
    reason = SelectField("Reason", choices=[SelectChoice(v, label) for v, label in SUPPRESS_REASONS])


class EraseForm(FlaskForm):
    confirm = BooleanField("I understand that this removes everything we hold on this person and cannot be undone")


class ButtonForm(FlaskForm):
    """A form that is only a button (with its CSRF token)."""


def _subscriber(subscriber_id: int) -> Subscriber:
    sub = db().get(Subscriber, subscriber_id)
    if sub is None or sub.status == "erased":
        abort(404)
    return sub


@bp.get("/subscribers")
@require(SUBSCRIBERS_MANAGE)
def subscribers_search():
    s = db()
    form = SearchForm(request.args).set_catalogue(s)
    f = form.to_filter() if form.validate() else Filter()
    result = search(s, f, page=page_number(), per_page=PER_PAGE)
    args = form.args()

    def page_url(n: int) -> str:
        return url_for("console.subscribers_search", page=n, **args)

    return render_template(
        "console/subscribers.html",
        form=form,
        result=result,
        page_url=page_url,
        filter_args=args,
        export_form=ButtonForm(),
        org_types=dict(ORGANISATION_TYPES),
    )


@bp.post("/subscribers/export")
@require(SUBSCRIBERS_MANAGE)
def subscribers_export():
    """The subscribers matching the search as CSV (the columns ``mailer subscribers
    import`` reads back), audited with the filter used (never the text typed)."""
    if not ButtonForm().validate_on_submit():
        abort(400)
    s = db()
    form = SearchForm(request.args).set_catalogue(s)
    f = form.to_filter() if form.validate() else Filter()
    out = io.StringIO()
    n = export_csv(s, out, where=f)
    audit.record(
        s, g.staff, "subscriber.export", ("subscribers", None), after={"rows": n, **f.describe()}, ip=client_ip()
    )
    s.commit()
    name = f"subscribers-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _profile(sub: Subscriber, status: int = 200, **extra):
    s = db()
    deliveries = recent_deliveries(s, sub.id)
    return render_template(
        "console/subscriber.html",
        sub=sub,
        pending=service.pending_choices(s, sub),
        ledger=service.consent_events(s, sub),
        deliveries=deliveries,
        bounces=bounces_of(s, sub.email, [d.id for d in deliveries]),
        suppressed=suppression.suppression_for(s, sub.email),
        link_kind=service.link_email_for(sub),
        org_types=dict(ORGANISATION_TYPES),
        suppress_form=extra.pop("suppress_form", None) or SuppressForm(formdata=None),
        button=ButtonForm(formdata=None),
        **extra,
    ), status


@bp.get("/subscribers/<int:subscriber_id>")
@require(SUBSCRIBERS_MANAGE)
def subscriber_profile(subscriber_id: int):
    sub = _subscriber(subscriber_id)
    notice = {"suppressed": "The address is suppressed.", "link": "The email is on its way."}.get(
        request.args.get("done", "")
    )
    return _profile(sub, notice=notice)


@bp.post("/subscribers/<int:subscriber_id>/suppress")
@require(SUBSCRIBERS_MANAGE)
def subscriber_suppress(subscriber_id: int):
    """Never mail this address again (until its owner opts in afresh); unsubscribes them."""
    form = SuppressForm()
    sub = _subscriber(subscriber_id)
    if not form.validate_on_submit():
        return _profile(sub, 400, suppress_form=form)
    s = db()
    before = {"status": sub.status, "suppressed": suppression.is_suppressed(s, sub.email)}
    service.suppress_address(s, sub.email, form.reason.data, source="admin")
    audit.record(
        s,
        g.staff,
        "subscriber.suppress",
        sub,
        before=before,
        after={"status": sub.status, "suppressed": True, "reason": form.reason.data},
        ip=client_ip(),
    )
    s.commit()
    return redirect(url_for("console.subscriber_profile", subscriber_id=sub.id, done="suppressed"))


@bp.post("/subscribers/<int:subscriber_id>/send-link")
@require(SUBSCRIBERS_MANAGE)
def subscriber_send_link(subscriber_id: int):
    """Email the person their manage link (or, while pending, the confirmation link)."""
    if not ButtonForm().validate_on_submit():
        abort(400)
    sub = _subscriber(subscriber_id)
    kind = service.link_email_for(sub)
    s = db()
    entry = suppression.suppression_for(s, sub.email)
    if kind is None or (entry is not None and entry.reason != "unsubscribed"):
        # A bounced or complaining address gets nothing from us, not even a link.
        return _profile(
            sub, 400, problem="This address is suppressed after a bounce or complaint: no email goes to it."
        )
    audit.record(s, g.staff, "subscriber.send_link", sub, after={"email": kind}, ip=client_ip())
    s.commit()
    rt().queue.send(send_transactional, kind, sub.id)  # after the commit: the entry exists first
    return redirect(url_for("console.subscriber_profile", subscriber_id=sub.id, done="link"))


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
@require(SUBSCRIBERS_MANAGE)
def subscriber_erase(subscriber_id: int):
    """Erase a person (a right-to-erasure request): a confirmation page first; the address
    survives only as a keyed hash on the suppression list."""
    sub = _subscriber(subscriber_id)
    form = EraseForm()
    if request.method == "GET" or not form.validate_on_submit() or not form.confirm.data:
        if request.method == "POST" and not form.errors:
            form.confirm.errors = ["Tick the box to confirm the erasure."]
        status = 400 if request.method == "POST" else 200
        return render_template("console/subscriber_erase.html", sub=sub, form=form), status
    s = db()
    before = {"status": sub.status}
    address = erasure.erase_subscriber(s, sub, source="admin")
    audit.record(s, g.staff, "subscriber.erase", sub, before=before, after={"status": sub.status}, ip=client_ip())
    s.commit()
    remove_messages_to(rt().settings.outbox_dir, address)  # after the commit: files are not transactional
    return render_template(
        "console/message.html",
        title="Erased",
        message=f"Subscriber {sub.id} is erased. Their address is kept only as a hash on the suppression list.",
    )
