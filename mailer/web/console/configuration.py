"""The effective configuration (admins): every setting the processes run with, secrets
masked (:func:`mailer.settings.display.effective`)."""

from __future__ import annotations

from flask import render_template

from mailer.runtime import current as rt
from mailer.settings.display import effective
from mailer.staff.permissions import SETTINGS_VIEW
from mailer.web.console.access import require
from mailer.web.console.blueprint import bp


@bp.get("/settings")
@require(SETTINGS_VIEW)
def settings_view():
    settings = rt().settings
    return render_template(
        "console/settings.html", rows=effective(settings), embedded=not settings.smtp_url, queue=rt().queue.embedded
    )
