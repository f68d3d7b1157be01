"""Staff accounts (admins): list, create, disable, change a role, reset a password or
two-factor.

New and reset passwords are random and shown once, to hand over in person.
"""

from __future__ import annotations

import secrets

from flask import abort, g, redirect, render_template, url_for

from mailer.staff.accounts import (
    change_role,
    create_user,
    disable_user,
    list_users,
    reset_password,
    reset_two_factor,
)
from mailer.staff.models import StaffUser
from mailer.staff.permissions import ROLES, STAFF_MANAGE
from mailer.validation import InvalidInput
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.console.forms import CreateStaffForm, PlainForm, ResetForm, RoleForm
from mailer.web.helpers import client_ip


def _page(form=None, status=200, **extra):
    return render_template(
        "console/staff.html",
        users=list_users(db()),
        form=form or CreateStaffForm(),
        plain=PlainForm(),
        reset=ResetForm(),
        roles=ROLES,
        me=g.staff,
        **extra,
    ), status


def _account(user_id: int) -> StaffUser:
    user = db().get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/staff")
@require(STAFF_MANAGE)
def staff_list():
    return _page()


@bp.post("/staff")
@require(STAFF_MANAGE)
def staff_create():
    form = CreateStaffForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    password = secrets.token_urlsafe(15)
    s = db()
    try:
        user = create_user(s, form.username.data, form.role.data, password, actor=g.staff, ip=client_ip())
    except InvalidInput as err:
        s.rollback()
        getattr(form, err.field, form.username).errors.append(err.message)
        return _page(form, 400)
    s.commit()
    return _page(shown_once=(user.username, password))


@bp.post("/staff/<int:user_id>/disable")
@require(STAFF_MANAGE)
def staff_disable(user_id: int):
    if not PlainForm().validate_on_submit():
        abort(400)
    user = _account(user_id)
    if user.id == g.staff.id:
        return _page(status=400, problem="You cannot disable your own account.")
    s = db()
    try:
        disable_user(s, user, actor=g.staff, ip=client_ip())
    except InvalidInput as err:
        s.rollback()
        return _page(status=400, problem=err.message)
    s.commit()
    return redirect(url_for("console.staff_list"))


@bp.post("/staff/<int:user_id>/reset")
@require(STAFF_MANAGE)
def staff_reset(user_id: int):
    form = ResetForm()
    if not form.validate_on_submit():
        abort(400)
    user = _account(user_id)
    s = db()
    password = reset_password(s, user, reset_two_factor=form.reset_2fa.data, actor=g.staff, ip=client_ip())
    s.commit()
    return _page(shown_once=(user.username, password))


@bp.post("/staff/<int:user_id>/role")
@require(STAFF_MANAGE)
def staff_role(user_id: int):
    form = RoleForm()
    if not form.validate_on_submit():
        return _page(status=400, problem="Choose one of the roles listed.")
    user = _account(user_id)
    s = db()
    try:
        change_role(s, user, form.role.data, actor=g.staff, ip=client_ip())
    except InvalidInput as err:
        s.rollback()
        return _page(status=400, problem=err.message)
    s.commit()
    return redirect(url_for("console.staff_list"))


@bp.post("/staff/<int:user_id>/reset-2fa")
@require(STAFF_MANAGE)
def staff_reset_2fa(user_id: int):
    """Remove someone's two-factor (a lost phone) without touching their password."""
    if not PlainForm().validate_on_submit():
        abort(400)
    user = _account(user_id)
    s = db()
    try:
        reset_two_factor(s, user, actor=g.staff, ip=client_ip())
    except InvalidInput as err:
        s.rollback()
        return _page(status=400, problem=err.message)
    s.commit()
    return redirect(url_for("console.staff_list"))
