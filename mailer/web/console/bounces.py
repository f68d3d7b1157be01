"""Bounces and complaints: recent reports, failure rates per receiving domain, and the
suppression list as hashes with a lookup box (is this address suppressed, and why).

The lookup posts the address (so it stays out of URLs and request logs) and only reads.
"""

from __future__ import annotations

from flask import render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from mailer.delivery import reports
from mailer.delivery.suppression import COMPLAINT, HARD, SOFT
from mailer.staff.permissions import SUBSCRIBERS_MANAGE
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from subscribers.models import SUPPRESSION_REASONS

KINDS = (HARD, SOFT, COMPLAINT)


class LookupForm(FlaskForm):
    address = StringField(
        "Email address to look up",
        validators=[DataRequired("Type the address to look up."), Length(max=320)],
        render_kw={"autocomplete": "off", "type": "email"},
    )


def _arg_page(name: str) -> int:
    try:
        return max(1, int(request.args.get(name, "1")))
    except ValueError:
        return 1


def _page(form: LookupForm, found=None, status: int = 200):
    s = db()
    kind = request.args.get("kind", "") if request.args.get("kind", "") in KINDS else ""
    reason = request.args.get("reason", "") if request.args.get("reason", "") in SUPPRESSION_REASONS else ""
    events = reports.recent_bounces(s, kind=kind, page=_arg_page("page"))
    listed = reports.suppressions(s, reason=reason, page=_arg_page("spage"))
    keep = {k: v for k, v in (("kind", kind), ("reason", reason)) if v}

    def url(**changes) -> str:
        args = {**keep, "page": events.page, "spage": listed.page, **changes}
        return url_for("console.bounces", **{k: v for k, v in args.items() if v not in ("", None)})

    return render_template(
        "console/bounces.html",
        form=form,
        found=found,
        events=events,
        counts=reports.bounce_counts(s),
        domains=reports.domain_failure_rates(s),
        listed=listed,
        reasons=reports.suppression_counts(s),
        kinds=KINDS,
        reason_names=SUPPRESSION_REASONS,
        kind=kind,
        reason=reason,
        url=url,
    ), status


@bp.get("/bounces")
@require(SUBSCRIBERS_MANAGE)
def bounces():
    return _page(LookupForm(formdata=None))


@bp.post("/bounces")
@require(SUBSCRIBERS_MANAGE)
def bounces_lookup():
    form = LookupForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    found = reports.lookup(db(), form.address.data.strip())
    db().rollback()  # a lookup only reads (finding an entry may re-key it; that can wait)
    return _page(form, found=found)
