"""Rejection reasons moderators pick from: list, add, change, delete. Each change is
audited; a decision already made keeps the words it was made with."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for

from mailer.content import reasons
from mailer.staff import audit
from mailer.staff.permissions import ITEMS_MODERATE
from mailer.validation import InvalidInput
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.console.forms import PlainForm
from mailer.web.console.moderation_forms import ReasonForm
from mailer.web.helpers import client_ip, error_on


def _page(new: ReasonForm | None = None, edited: ReasonForm | None = None, status: int = 200):
    rows = reasons.all_reasons(db())
    forms = []
    for r in rows:
        if edited is not None and edited._prefix == f"r{r.id}-":
            forms.append((r, edited))
        else:
            forms.append((r, ReasonForm(prefix=f"r{r.id}", data=reasons.summary(r), formdata=None)))
    return render_template(
        "console/moderation/reasons.html",
        forms=forms,
        new=new or ReasonForm(prefix="new", formdata=None),
        plain=PlainForm(),
    ), status


def _row(reason_id: int):
    row = reasons.get_reason(db(), reason_id)
    if row is None:
        abort(404)
    return row


@bp.get("/moderation/reasons")
@require(ITEMS_MODERATE)
def reasons_list():
    return _page()


@bp.post("/moderation/reasons")
@require(ITEMS_MODERATE)
def reasons_add():
    form = ReasonForm(prefix="new")
    if not form.validate_on_submit():
        return _page(new=form, status=400)
    s = db()
    try:
        row = reasons.add_reason(s, form.title.data, form.text.data)
    except InvalidInput as err:
        s.rollback()
        error_on(form, err)
        return _page(new=form, status=400)
    audit.record(s, g.staff, "reason.create", row, after=reasons.summary(row), ip=client_ip())
    s.commit()
    flash(f"Added the reason {row.title!r}.", "ok")
    return redirect(url_for("console.reasons_list"))


@bp.post("/moderation/reasons/<int:reason_id>")
@require(ITEMS_MODERATE)
def reasons_change(reason_id: int):
    row = _row(reason_id)
    form = ReasonForm(prefix=f"r{reason_id}")
    if not form.validate_on_submit():
        return _page(edited=form, status=400)
    s = db()
    try:
        before = reasons.change_reason(s, row, form.title.data, form.text.data, form.position.data)
    except InvalidInput as err:
        s.rollback()
        error_on(form, err)
        return _page(edited=form, status=400)
    audit.record(s, g.staff, "reason.edit", row, before=before, after=reasons.summary(row), ip=client_ip())
    s.commit()
    flash(f"Saved the reason {row.title!r}.", "ok")
    return redirect(url_for("console.reasons_list"))


@bp.post("/moderation/reasons/<int:reason_id>/delete")
@require(ITEMS_MODERATE)
def reasons_delete(reason_id: int):
    row = _row(reason_id)
    s = db()
    ref = ("rejection_reasons", row.id)
    before = reasons.delete_reason(s, row)
    audit.record(s, g.staff, "reason.delete", ref, before=before, ip=client_ip())
    s.commit()
    flash(f"Deleted the reason {before['title']!r}. Items rejected with it keep their words.", "ok")
    return redirect(url_for("console.reasons_list"))
