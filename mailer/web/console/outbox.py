"""The outbox viewer (embedded mode): the emails the service wrote to its file outbox,
listed newest first and shown as HTML (in a sandboxed frame), text and headers.

Without ``SMTP_URL`` every email lands in ``OUTBOX_DIR``; this lets a new user see the
product without a mail server. With a relay configured there is no outbox to show.
"""

from __future__ import annotations

from flask import Response, abort, render_template, url_for

from mailer.mail.outbox import list_messages, read_message
from mailer.runtime import current as rt
from mailer.staff.permissions import SUBSCRIBERS_MANAGE
from mailer.web.console.access import require
from mailer.web.console.blueprint import bp
from mailer.web.helpers import page_number
from mailer.web.security_headers import use_policy

PER_PAGE = 50


@bp.get("/outbox")
@require(SUBSCRIBERS_MANAGE)  # the emails hold subscribers' addresses and personal links
def outbox_list():
    settings = rt().settings
    page = page_number()
    result = list_messages(settings.outbox_dir, page=page, per_page=PER_PAGE)

    def page_url(n: int) -> str:
        return url_for("console.outbox_list", page=n)

    return render_template(
        "console/outbox.html", result=result, page_url=page_url, relay=bool(settings.smtp_url), settings=settings
    )


def _message(name: str):
    msg = read_message(rt().settings.outbox_dir, name)
    if msg is None:
        abort(404)
    return msg


@bp.get("/outbox/<name>")
@require(SUBSCRIBERS_MANAGE)
def outbox_message(name: str):
    use_policy("framing")  # the page frames the email's HTML (outbox_html)
    return render_template("console/outbox_message.html", msg=_message(name))


@bp.get("/outbox/<name>/html")
@require(SUBSCRIBERS_MANAGE)
def outbox_html(name: str):
    """The email's HTML part as its own document, for the viewer's sandboxed frame."""
    msg = _message(name)
    if msg.html is None:
        abort(404)
    resp = Response(msg.html, mimetype="text/html")
    use_policy("email-frame")  # the email's own policy: inline styles, nothing runs
    return resp
