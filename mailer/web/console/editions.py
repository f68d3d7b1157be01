"""Editions: the list, building one for a month, and one edition's page (edit its fields and
item order, approve or reject it, its history).

A thin shell over :mod:`mailer.staff.editions` (audited actions over the digest domain);
previews and test sends are in :mod:`.edition_preview`, scheduling, sending and the ledger
in :mod:`.edition_send`.
"""

from __future__ import annotations

from flask import abort, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from mailer.digest.editions import EditionError, edition_items, find_edition
from mailer.digest.models import EDITABLE, Edition
from mailer.digest.plan import ordered
from mailer.paging import page_count
from mailer.runtime import current as rt
from mailer.staff import approval, audit
from mailer.staff import editions as staff_editions
from mailer.staff.models import StaffUser
from mailer.staff.permissions import EDITIONS_APPROVE, EDITIONS_EDIT, EDITIONS_SEND, allows
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.console.edition_forms import BuildForm, EditForm, PauseForm, RejectForm, ScheduleForm
from mailer.web.console.forms import PlainForm
from mailer.web.helpers import client_ip, page_number

PER_PAGE = 24
HISTORY = 20


def second_approver() -> bool:
    return rt().settings.require_second_approver


def edition_or_404(period: str, *, lock: bool = False) -> Edition:
    try:
        edition = find_edition(db(), period, lock=lock)
    except EditionError:  # not a period at all
        abort(404)
    if edition is None:
        abort(404)
    return edition


def staff_name(staff_id: int | None) -> str | None:
    if staff_id is None:
        return None
    user = db().get(StaffUser, staff_id)
    return user.username if user else f"account {staff_id}"


def _list_page(form: BuildForm, status: int = 200):
    s = db()
    total = s.scalar(select(func.count()).select_from(Edition))
    page = page_number() if status == 200 else 1
    rows = s.scalars(
        select(Edition).order_by(Edition.period.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    return render_template(
        "console/editions.html",
        rows=rows,
        total=total,
        page=page,
        pages=page_count(total, PER_PAGE),
        form=form,
        waiting={e.id: approval.needs_approval(e, second_approver_required=second_approver()) for e in rows},
    ), status


@bp.get("/editions")
@require(EDITIONS_EDIT)
def editions():
    return _list_page(BuildForm())


@bp.post("/editions")
@require(EDITIONS_EDIT)
def edition_build():
    form = BuildForm()
    s = db()
    if form.validate_on_submit():
        try:
            edition = staff_editions.build(s, form.period.data.strip(), g.staff, settings=rt().settings, ip=client_ip())
        except EditionError as err:
            s.rollback()
            form.period.errors.append(str(err))
        else:
            period = edition.period
            s.commit()
            return redirect(url_for("console.edition", period=period))
    return _list_page(form, 400)


def _order_items(edition: Edition) -> list:
    """The edition's items other than events (they keep their date order), in the order
    the topic sections show them."""
    items = edition_items(db(), edition.id)
    return ordered([i for i in items if i.kind != "event"], edition.item_order)


def _edit_form(edition: Edition, formdata=None) -> EditForm:
    form = EditForm(formdata=formdata, obj=None if formdata else edition)
    if formdata is None:
        form.featured.data = str(edition.featured_item_id or "")
    form.featured.choices = [("", "(none)")] + [
        (str(i.id), f"{i.title} ({i.partner.name})") for i in edition_items(db(), edition.id)
    ]
    return form


def render_edition(edition: Edition, *, form=None, reject=None, schedule=None, problem=None, notice=None, status=200):
    user = g.staff
    history = audit.search(
        db(), object_type="editions", object_id=str(edition.id), page=page_number(), per_page=HISTORY
    )
    needs = approval.needs_approval(edition, second_approver_required=second_approver())
    may_approve = allows(user.role, EDITIONS_APPROVE) and bool(
        approval.can_approve(edition.changed_by_id, user, second_approver_required=second_approver())
    )
    return render_template(
        "console/edition.html",
        ed=edition,
        items=edition_items(db(), edition.id),
        order_items=_order_items(edition),
        editable=edition.status in EDITABLE,
        form=form or _edit_form(edition),
        reject=reject or RejectForm(),
        schedule=schedule or ScheduleForm(),
        pause=PauseForm(),
        plain=PlainForm(),
        needs_approval=needs,
        second_approver=second_approver(),
        may_approve=may_approve,
        may_send=allows(user.role, EDITIONS_SEND),
        can_approve_role=allows(user.role, EDITIONS_APPROVE),
        changed_by=staff_name(edition.changed_by_id),
        approved_by=staff_name(edition.approved_by_id),
        history=history,
        timezone=rt().settings.schedule_timezone,
        problem=problem,
        notice=notice or request.args.get("notice"),
    ), status


@bp.get("/editions/<period>")
@require(EDITIONS_EDIT)
def edition(period: str):
    return render_edition(edition_or_404(period))


def _positions(items) -> tuple[list[int] | None, list[str]]:
    """The item order the form asks for (``pos-<id>`` numbers), or None when it is the
    order shown; and the problems found. An item given the position another already has
    goes before it (it is the one the person moved); other ties keep the current order."""
    problems, keyed = [], []
    for index, item in enumerate(items):
        raw = (request.form.get(f"pos-{item.id}") or "").strip()
        try:
            pos = int(raw) if raw else index + 1
        except ValueError:
            problems.append(f"The position of “{item.title}” must be a whole number.")
            pos = index + 1
        keyed.append((pos, 0 if pos != index + 1 else 1, index, item.id))
    wanted = [item_id for *_, item_id in sorted(keyed)]
    return (None if wanted == [i.id for i in items] else wanted), problems


@bp.post("/editions/<period>/edit")
@require(EDITIONS_EDIT)
def edition_edit(period: str):
    s = db()
    ed = edition_or_404(period, lock=True)
    form = _edit_form(ed, request.form)
    if not form.validate_on_submit():
        return render_edition(ed, form=form, status=400)
    order, problems = _positions(_order_items(ed))
    if problems:
        form.form_errors.extend(problems)
        return render_edition(ed, form=form, status=400)
    featured = form.featured.data
    changes = {
        "subject": form.subject.data,
        "preheader": form.preheader.data or "",
        "intro": form.intro.data or "",
        "featured_item_id": int(featured) if featured and featured.isdigit() else None,
    }
    if order is not None:
        changes["item_order"] = order
    try:
        changed = staff_editions.edit(s, ed, g.staff, ip=client_ip(), **changes)
    except EditionError as err:
        s.rollback()
        form.form_errors.append(str(err))
        return render_edition(edition_or_404(period), form=form, status=400)
    s.commit()
    note = "Saved." if changed else "Nothing changed."
    if changed and second_approver():
        note += " Someone else must now approve the edition before it can be scheduled or sent."
    return redirect(url_for("console.edition", period=period, notice=note))


@bp.post("/editions/<period>/rebuild")
@require(EDITIONS_EDIT)
def edition_rebuild(period: str):
    if not PlainForm().validate_on_submit():
        abort(400)
    ed = edition_or_404(period)
    s = db()
    try:
        staff_editions.build(s, ed.period, g.staff, settings=rt().settings, ip=client_ip())
    except EditionError as err:
        s.rollback()
        return render_edition(edition_or_404(period), problem=str(err), status=400)
    s.commit()
    return redirect(url_for("console.edition", period=period, notice="Rebuilt from the approved items."))


@bp.post("/editions/<period>/approve")
@require(EDITIONS_APPROVE)
def edition_approve(period: str):
    if not PlainForm().validate_on_submit():
        abort(400)
    s = db()
    ed = edition_or_404(period, lock=True)
    try:
        staff_editions.approve(s, ed, g.staff, second_approver_required=second_approver(), ip=client_ip())
    except EditionError as err:
        s.rollback()
        return render_edition(edition_or_404(period), problem=str(err), status=409)
    s.commit()
    return redirect(url_for("console.edition", period=period, notice="Approved: it may now be scheduled or sent."))


@bp.post("/editions/<period>/reject")
@require(EDITIONS_APPROVE)
def edition_reject(period: str):
    s = db()
    ed = edition_or_404(period, lock=True)
    form = RejectForm()
    if not form.validate_on_submit():
        return render_edition(ed, reject=form, status=400)
    try:
        staff_editions.reject(s, ed, g.staff, form.reason.data, ip=client_ip())
    except EditionError as err:
        s.rollback()
        form.reason.errors.append(str(err))
        return render_edition(edition_or_404(period), reject=form, status=400)
    s.commit()
    return redirect(url_for("console.edition", period=period, notice="Sent back to its editor with your reason."))
