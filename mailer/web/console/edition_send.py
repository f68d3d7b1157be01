"""Scheduling and sending an edition, watching the send, and its ledger afterwards.

The send page works without script (a Refresh link reloads it); ``console-sending.js``
(served from the app) polls :func:`edition_progress` and updates the figures in place.
Every action goes through :mod:`mailer.staff.editions` (approval checked, audited); work
is enqueued only after the transaction commits.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import abort, g, jsonify, redirect, render_template, request, url_for

from mailer.actors.digest import enqueue_pending, start_edition
from mailer.delivery import control
from mailer.delivery.control import ControlError
from mailer.delivery.history import ledger, recent_failures
from mailer.delivery.models import BOUNCED, CANCELLED, FAILED, PENDING, SENDING, SENT, SKIPPED, UNKNOWN
from mailer.delivery.sending import reset_breaker
from mailer.digest.editions import EditionError
from mailer.digest.models import CANCELLED as EDITION_CANCELLED
from mailer.digest.models import PAUSED, SCHEDULED
from mailer.digest.models import SENDING as EDITION_SENDING
from mailer.digest.models import SENT as EDITION_SENT
from mailer.runtime import current as rt
from mailer.staff import editions as staff_editions
from mailer.staff.approval import ApprovalError
from mailer.staff.permissions import EDITIONS_EDIT, EDITIONS_SEND, allows
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.console.edition_forms import PauseForm, ScheduleForm
from mailer.web.console.editions import edition_or_404, render_edition, second_approver
from mailer.web.console.forms import PlainForm
from mailer.web.helpers import client_ip, page_number

LEDGER_PER_PAGE = 50
LEDGER_STATUSES = (SENT, PENDING, SENDING, FAILED, BOUNCED, UNKNOWN, SKIPPED, CANCELLED)
# Why a delivery ended as it did, when its row carries no error of its own.
WHY = {
    SKIPPED: "nothing in this edition matched their choices",
    CANCELLED: "the edition was cancelled before it was sent",
    UNKNOWN: "a worker stopped while sending; it may or may not have arrived",
}


def _refused(period: str, err: Exception, status: int = 409):
    return render_edition(edition_or_404(period), problem=str(err), status=status)


@bp.post("/editions/<period>/schedule")
@require(EDITIONS_SEND)
def edition_schedule(period: str):
    s = db()
    ed = edition_or_404(period, lock=True)
    form = ScheduleForm()
    if not form.validate_on_submit():
        return render_edition(ed, schedule=form, status=400)
    when = form.when.data.replace(tzinfo=ZoneInfo(rt().settings.schedule_timezone))
    try:
        staff_editions.schedule(s, ed, when, g.staff, second_approver_required=second_approver(), ip=client_ip())
    except ApprovalError as err:
        s.rollback()
        return _refused(period, err)
    except EditionError as err:  # the time, or the edition's state
        s.rollback()
        form.when.errors.append(str(err))
        return render_edition(edition_or_404(period), schedule=form, status=409)
    s.commit()
    return redirect(url_for("console.edition", period=period, notice=f"Scheduled for {when:%Y-%m-%d %H:%M %Z}."))


@bp.post("/editions/<period>/unschedule")
@require(EDITIONS_SEND)
def edition_unschedule(period: str):
    if not PlainForm().validate_on_submit():
        abort(400)
    s = db()
    ed = edition_or_404(period, lock=True)
    try:
        staff_editions.unschedule(s, ed, g.staff, ip=client_ip())
    except EditionError as err:
        s.rollback()
        return _refused(period, err)
    s.commit()
    return redirect(url_for("console.edition", period=period, notice="Back to draft."))


@bp.post("/editions/<period>/send")
@require(EDITIONS_SEND)
def edition_send(period: str):
    if not PlainForm().validate_on_submit():
        abort(400)
    s = db()
    ed = edition_or_404(period, lock=True)
    try:
        staff_editions.send(s, ed, g.staff, second_approver_required=second_approver(), ip=client_ip())
    except EditionError as err:
        s.rollback()
        return _refused(period, err)
    edition_id = ed.id
    s.commit()
    rt().queue.send(start_edition, edition_id)  # after the commit: the job fans it out
    return redirect(url_for("console.edition_sending", period=period))


def _progress_data(p) -> dict:
    return {
        "period": p.period,
        "status": p.status,
        "total": p.total,
        "sent": p.sent,
        "failed": p.failed,
        "pending": p.pending,
        "done": p.done,
        "unknown": p.counts.get(UNKNOWN, 0),
        "skipped": p.counts.get(SKIPPED, 0),
        "counts": p.counts,
        "rate": round(p.rate, 1),
        "eta_seconds": None if p.eta_seconds is None else round(p.eta_seconds),
        "eta": duration(p.eta_seconds),
        "events": [{"at": at.isoformat(), "kind": kind, "detail": detail} for at, kind, detail in p.events[-10:]],
        "finished": p.status not in (EDITION_SENDING, PAUSED) and p.pending == 0,
        "trouble": " ".join(_troubles(p)),
    }


def _troubles(p) -> list[str]:
    """What holds the send up, said to the editor (``mailer edition status`` says the same)."""
    out = []
    if p.adding_readers:  # the total below is not final yet
        out.append(f"Still adding readers: the ledger holds the first {p.total} so far.")
    if p.refusing_since is not None:
        out.append(
            f"The relay has been refusing since {p.refusing_since:%H:%M} UTC; {p.waiting_retry} waiting to retry."
        )
        if p.relay_answer:
            out.append(f"Its last answer: {p.relay_answer}")
    if p.silent:
        out.append(
            f"{p.silent} held by a worker silent since {p.silent_since:%H:%M:%S} UTC (stopped or dead); "
            f"a sweep takes them back from {p.taken_back_from:%H:%M:%S} UTC."
        )
    return out


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


@bp.get("/editions/<period>/sending")
@require(EDITIONS_EDIT)
def edition_sending(period: str):
    ed = edition_or_404(period)
    p = control.progress(db(), ed, rt().settings.delivery.lease_seconds)
    may = allows(g.staff.role, EDITIONS_SEND)
    last = p.events[-1] if p.events else None
    return render_template(
        "console/edition_sending.html",
        ed=ed,
        p=_progress_data(p),
        events=p.events[-20:][::-1],
        failures=recent_failures(db(), ed.id),
        # paused by the circuit breaker (and not resumed since): say so, and what to do
        breaker=last[2] if ed.status == PAUSED and last and last[1] == "breaker" else None,
        plain=PlainForm(),
        pause=PauseForm(),
        may_pause=may and ed.status == EDITION_SENDING,
        may_resume=may and ed.status == PAUSED,
        may_cancel=may and ed.status not in (EDITION_SENT, EDITION_CANCELLED),
        may_resend=may and ed.status in (EDITION_SENT, EDITION_SENDING) and p.counts.get(UNKNOWN, 0) > 0,
        scheduled=ed.status == SCHEDULED,
        notice=request.args.get("notice"),
    )


@bp.get("/editions/<period>/progress.json")
@require(EDITIONS_EDIT)
def edition_progress(period: str):
    ed = edition_or_404(period)
    return jsonify(_progress_data(control.progress(db(), ed, rt().settings.delivery.lease_seconds)))


def _control(period: str, action, done: str):
    """Run one sending control (``action(session, edition)`` returning how many deliveries
    to enqueue, or None), commit, enqueue the edition's pending ones, and go back to the
    send page."""
    s = db()
    ed = edition_or_404(period, lock=True)
    try:
        queued = action(s, ed)
    except (EditionError, ControlError) as err:
        s.rollback()
        return _refused(period, err)
    edition_id = ed.id
    s.commit()
    if queued is not None:
        enqueue_pending(edition_id)
    return redirect(url_for("console.edition_sending", period=period, notice=done))


@bp.post("/editions/<period>/pause")
@require(EDITIONS_SEND)
def edition_pause(period: str):
    form = PauseForm()
    if not form.validate_on_submit():
        abort(400)

    def act(s, ed):
        staff_editions.pause(s, ed, g.staff, form.reason.data or "", ip=client_ip())

    return _control(period, act, "Paused: messages already with the relay finish; nothing new starts.")


@bp.post("/editions/<period>/resume")
@require(EDITIONS_SEND)
def edition_resume(period: str):
    if not PlainForm().validate_on_submit():
        abort(400)

    def act(s, ed):
        queued = staff_editions.resume(s, ed, g.staff, ip=client_ip())
        # The person says the relay is fixed: the breaker's failure streak starts afresh.
        reset_breaker(rt().settings.redis_url, ed.id)
        return queued

    return _control(period, act, "Resumed.")


@bp.post("/editions/<period>/cancel")
@require(EDITIONS_SEND)
def edition_cancel(period: str):
    if not PlainForm().validate_on_submit():
        abort(400)

    def act(s, ed):
        staff_editions.cancel(s, ed, g.staff, ip=client_ip())

    return _control(period, act, "Cancelled: deliveries not yet sent never will be.")


@bp.post("/editions/<period>/resend-unknown")
@require(EDITIONS_SEND)
def edition_resend_unknown(period: str):
    if not PlainForm().validate_on_submit():
        abort(400)

    def act(s, ed):
        return staff_editions.resend_unknown(s, ed, g.staff, ip=client_ip())

    return _control(period, act, "Deliveries of unknown fate queued again.")


@bp.get("/editions/<period>/ledger")
@require(EDITIONS_EDIT)
def edition_ledger(period: str):
    ed = edition_or_404(period)
    search = (request.args.get("q") or "").strip()[:320]
    status = request.args.get("status", "")
    if status not in LEDGER_STATUSES:
        status = ""
    result = ledger(db(), ed.id, search=search, status=status, page=page_number(), per_page=LEDGER_PER_PAGE)
    active = {k: v for k, v in (("q", search), ("status", status)) if v}

    def page_url(n: int) -> str:
        return url_for("console.edition_ledger", period=period, page=n, **active)

    return render_template(
        "console/edition_ledger.html",
        ed=ed,
        result=result,
        search=search,
        status=status,
        statuses=LEDGER_STATUSES,
        why=WHY,
        page_url=page_url,
    )
