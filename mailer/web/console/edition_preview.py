"""An edition as a reader sees it, before it goes: the preview (as any subscriber, or as
any choice of topics and partners, at desktop and 320 px), test sends to any address
rendered as the chosen reader, and the recipients preview (who will get it and who will
not, and why).

The copy is shown in sandboxed frames (no script, no same-origin rights) served by
:func:`edition_frame` with a policy of its own: the email's styles are inline, the
console's pages allow none. Links in a previewed or test copy point at a stand-in reader
(id 0) and act on nobody, even when previewing a real subscriber.
"""

from __future__ import annotations

from flask import Response, g, render_template, request, url_for
from sqlalchemy import select

from mailer.content.models import Partner, Topic
from mailer.delivery import audience as recipients_preview
from mailer.digest import preview
from mailer.digest.cache import prepared_editions
from mailer.digest.compose import copy_for, load_plan
from mailer.digest.editions import EditionError
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import PermanentFailure, TransientFailure
from mailer.paging import page_count
from mailer.runtime import current as rt
from mailer.staff import editions as staff_editions
from mailer.staff.permissions import EDITIONS_EDIT
from mailer.web.console.access import db, require, writes
from mailer.web.console.blueprint import bp
from mailer.web.console.edition_forms import PreviewChoice, TestSendForm
from mailer.web.console.editions import edition_or_404
from mailer.web.helpers import client_ip, page_number
from mailer.web.limits import keyed, retry_after_text, wait_for
from mailer.web.security_headers import use_policy
from subscribers.service import Recipient

PEOPLE_PER_PAGE = 50


def _ids(name: str) -> list[int]:
    return [int(v) for v in request.values.getlist(name) if v.strip().isdigit()]


def _reader(s) -> tuple[Recipient, str] | None:
    """The reader the request names (``subscriber`` address, or ``topic``/``partner``
    ids), as a stand-in whose links act on nobody, and words saying who it is; None when
    the request names nobody. :class:`~mailer.digest.preview.PreviewError` for a bad choice."""
    address = (request.values.get("subscriber") or "").strip()
    topics, partners = _ids("topic"), _ids("partner")
    if address and (topics or partners):
        raise preview.PreviewError("Preview as a subscriber or as chosen topics and partners, not both.")
    if address:
        real = preview.as_subscriber(s, address)
        stand_in = Recipient(preview.STAND_IN_ID, real.email, real.name, 0, real.topic_ids, real.partner_ids)
        return stand_in, f"subscriber {real.email}"
    if topics or partners:
        who = preview.as_choices(s, topic_ids=topics, partner_ids=partners)
        return who, f"topics {sorted(topics)} and partners {sorted(partners)}"
    return None


def _choice_query() -> dict:
    """The reader part of the query string, to carry into frame and form addresses."""
    query = {}
    if request.values.get("subscriber"):
        query["subscriber"] = request.values["subscriber"].strip()
    if _ids("topic"):
        query["topic"] = _ids("topic")
    if _ids("partner"):
        query["partner"] = _ids("partner")
    return query


def _preview_page(period: str, *, form=None, notice=None, problem=None, status=200, headers=None):
    s = db()
    ed = edition_or_404(period)
    who = None
    try:
        who = _reader(s)
    except (EditionError, ValueError) as err:
        problem = problem or getattr(err, "message", None) or str(err)
        status = 400
    query = _choice_query()
    frame_url = url_for("console.edition_frame", period=period, **query) if who and not problem else None
    use_policy("framing")
    page = render_template(
        "console/edition_preview.html",
        ed=ed,
        choice=PreviewChoice(request.args),
        topics=list(s.scalars(select(Topic).order_by(Topic.position, Topic.id))),
        partners=list(s.scalars(select(Partner).order_by(Partner.name))),
        chosen_topics=set(_ids("topic")),
        chosen_partners=set(_ids("partner")),
        who=who[1] if who else None,
        query=query,
        frame_url=frame_url,
        text_url=url_for("console.edition_frame", period=period, format="text", **query) if frame_url else None,
        form=form or TestSendForm(),
        notice=notice,
        problem=problem,
    )
    return page, status, headers or {}


@bp.get("/editions/<period>/preview")
@require(EDITIONS_EDIT)
def edition_preview(period: str):
    return _preview_page(period)


@bp.get("/editions/<period>/frame")
@require(EDITIONS_EDIT)
def edition_frame(period: str):
    """The chosen reader's copy (HTML, or the text part with ``format=text``)."""
    s = db()
    ed = edition_or_404(period)
    use_policy("email-frame")
    try:
        who = _reader(s)
    except (EditionError, ValueError) as err:
        return Response(getattr(err, "message", None) or str(err), status=400, mimetype="text/plain")
    if who is None:
        return Response("Choose a subscriber, or topics and partners.", status=400, mimetype="text/plain")
    copy = copy_for(prepared_editions.get(s, ed, rt().settings), who[0])
    if copy is None:
        return Response(
            "Nothing in this edition matches these choices: this reader would be skipped.", mimetype="text/plain"
        )
    if request.args.get("format") == "text":
        return Response(copy[1], mimetype="text/plain")
    return Response(copy[0], mimetype="text/html")


def _test_send_wait(address: str) -> int:
    """Count one test send by this person and to ``address``: 0 if within the hourly
    limits (``PREVIEW_SENDS_PER_LINK`` per person, ``PREVIEW_SENDS_PER_ADDRESS`` per
    target address, shared with preview links), else the seconds to wait."""
    settings = rt().settings
    return wait_for(
        (f"console-test:{g.staff.id}", settings.preview_sends_per_link),
        (f"preview-to:{keyed(address.casefold())}", settings.preview_sends_per_address),
    )


@bp.post("/editions/<period>/test-send")
@require(EDITIONS_EDIT)
def edition_test_send(period: str):
    r = rt()
    s = db()
    ed = edition_or_404(period)
    form = TestSendForm()
    if not form.validate_on_submit():
        return _preview_page(period, form=form, status=400)
    try:
        who = _reader(s)
        if who is None:
            raise preview.PreviewError("Choose who to render the test as first.")
        envelope = preview.make_test_send(prepared_editions.get(s, ed, r.settings), r.settings, who[0], form.to.data)
    except (EditionError, ValueError) as err:
        form.to.errors.append(getattr(err, "message", None) or str(err))
        return _preview_page(period, form=form, status=400)
    wait = _test_send_wait(envelope.recipient)
    if wait:
        form.to.errors.append(
            f"Too many test sends by you or to {envelope.recipient} this hour; nothing was sent. "
            f"Try again in {retry_after_text(wait)}."
        )
        return _preview_page(period, form=form, status=429, headers={"Retry-After": str(wait)})
    try:
        Outgoing(r.settings, r.transport).one_off(envelope)  # the one send path: signed, VERP
    except (PermanentFailure, TransientFailure) as err:
        form.to.errors.append(f"The test could not be sent: {err}")
        return _preview_page(period, form=form, status=502)
    finally:
        r.transport.close()
    staff_editions.test_sent(s, ed, g.staff, envelope.recipient, who[1], ip=client_ip())
    s.commit()
    return _preview_page(period, notice=f"Sent a test to {envelope.recipient}, rendered as {who[1]}.")


@bp.get("/editions/<period>/recipients")
@require(EDITIONS_EDIT)
@writes  # the fan-out's dry run writes, then rolls back
def edition_recipients(period: str):
    """How many a send now would reach, and who it would not, by reason (the fan-out's
    own choice, made and rolled back); one list at a time, paginated."""
    s = db()
    ed = edition_or_404(period)
    try:
        result = recipients_preview.audience(s, ed, load_plan(s, ed))
    except EditionError as err:  # the fan-out refuses: paused, cancelled, no items
        return render_template("console/edition_recipients.html", ed=ed, problem=str(err)), 409
    reason = request.args.get("reason", "")
    if reason not in recipients_preview.REASONS:
        reason = "will-get"
    ids = result.will_get if reason == "will-get" else result.will_not[reason]
    page = page_number()
    pages = page_count(len(ids), PEOPLE_PER_PAGE)
    shown = recipients_preview.people(s, ids[(page - 1) * PEOPLE_PER_PAGE : page * PEOPLE_PER_PAGE])
    return render_template(
        "console/edition_recipients.html",
        ed=ed,
        result=result,
        reasons=recipients_preview.REASONS,
        reason=reason,
        people=shown,
        count=len(ids),
        page=page,
        pages=pages,
    )
