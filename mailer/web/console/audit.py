"""The audit log, read-only: filter by person, action and object; newest first, paginated."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField

from mailer.staff import audit as staff_audit
from mailer.staff.permissions import AUDIT_VIEW
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.helpers import page_number

PER_PAGE = 50


class AuditFilter(FlaskForm):
    """A GET form: it changes nothing, so it carries no CSRF token."""

    class Meta:
        csrf = False

    actor = StringField("Person")
    action = StringField("Action (e.g. login, staff)")
    object_type = StringField("Object type (e.g. staff_users)")
    object_id = StringField("Object id")


@bp.get("/audit")
@require(AUDIT_VIEW)
def audit_log():
    form = AuditFilter(request.args)
    filters = {
        name: (getattr(form, name).data or "").strip()[:100] for name in ("actor", "action", "object_type", "object_id")
    }
    page = page_number()
    result = staff_audit.search(db(), page=page, per_page=PER_PAGE, **filters)
    active = {k: v for k, v in filters.items() if v}

    def page_url(n: int) -> str:
        return url_for("console.audit_log", page=n, **active)

    return render_template("console/audit.html", form=form, result=result, page_url=page_url)
