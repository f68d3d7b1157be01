"""Importing subscribers in the console: upload, see the dry run row by row, import.

1. ``/admin/subscribers/import``: upload a CSV with its consent basis; the dry run
   (:func:`subscribers.import_jobs.check`) shows what every row would become before
   anything is written.
2. "Import": the job is queued (:func:`mailer.actors.imports.run_import`) and its page
   shows a progress bar; without JavaScript the page refreshes itself (a ``<noscript>``
   meta refresh), with it ``import-progress.js`` polls the progress as JSON.

Each step is audited. Uploads may be far larger than the app's form limit, so this one
view raises the limit for itself, logged-in staff only; its form carries and checks its
own CSRF token (Flask-WTF), so it is exempt from the app-wide check that would read the
body before the limit is raised.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import abort, g, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from mailer.actors.imports import run_import
from mailer.paging import page_count
from mailer.runtime import current as rt
from mailer.staff import audit
from mailer.staff.permissions import SUBSCRIBERS_MANAGE
from mailer.web import csrf
from mailer.web.console.access import db, now, require
from mailer.web.console.blueprint import bp
from mailer.web.helpers import client_ip, page_number
from subscribers import import_jobs
from subscribers.importer import OUTCOMES, ImportError_
from subscribers.models import CHECKED, DONE, FAILED, ImportJob

ROWS_PER_PAGE = 100


class UploadForm(FlaskForm):
    file = FileField("CSV file (UTF-8, with a header row; an email column is required)", validators=[FileRequired()])
    basis = SelectField(
        "Lawful basis",
        choices=[
            SelectChoice("consent", "Consent: they opted in elsewhere"),
            SelectChoice("legitimate-interests", "Legitimate interests: corporate subscribers such as GP practices"),
        ],
    )
    source = StringField(
        "Where the list comes from (kept in each person's consent ledger)", validators=[Length(max=100)]
    )
    skip_invalid = BooleanField("Import the valid rows even if some rows are invalid")


class ButtonForm(FlaskForm):
    """A form that is only a button (with its CSRF token)."""


def _start_page(form: UploadForm, status: int):
    page = page_number()
    result = import_jobs.recent(db(), page)

    def page_url(n: int) -> str:
        return url_for("console.import_start", page=n)

    return render_template("console/import.html", form=form, result=result, page_url=page_url), status


@bp.route("/subscribers/import", methods=["GET", "POST"])
@require(SUBSCRIBERS_MANAGE)
@csrf.exempt  # the form checks its own token (see the module docstring)
def import_start():
    if request.method == "POST":
        request.max_content_length = import_jobs.MAX_BYTES + 64 * 1024
    form = UploadForm()
    if not form.validate_on_submit():
        return _start_page(form, 400 if request.method == "POST" else 200)
    s = db()
    upload = form.file.data
    try:
        content = import_jobs.decode(upload.read())
        job, _ = import_jobs.check(
            s,
            content=content,
            filename=upload.filename or "upload.csv",
            basis=form.basis.data,
            source=(form.source.data or "").strip(),
            skip_invalid=form.skip_invalid.data,
            created_by=g.staff.username,
        )
    except ImportError_ as err:
        s.rollback()
        form.file.errors = [str(err)]
        return _start_page(form, 400)
    import_jobs.purge_stale(s)
    audit.record(
        s,
        g.staff,
        "subscriber.import.check",
        job,
        after={"filename": job.filename, "basis": job.basis, **job.dry_run_counts},
        ip=client_ip(),
    )
    s.commit()
    return redirect(url_for("console.import_job", job_id=job.id))


def _notice_stalled(job: ImportJob) -> ImportJob:
    """A running job whose worker has not been heard from is failed now (audited as the
    system's finding), so the page tells the truth and offers a retry."""
    s = db()
    if import_jobs.mark_stalled(s, job, datetime.fromtimestamp(now(), timezone.utc)):
        audit.record(s, "system", "subscriber.import.stalled", job, after={"error": job.error})
        s.commit()
    return job


def _job(job_id: int) -> ImportJob:
    job = db().get(ImportJob, job_id)
    if job is None:
        abort(404)
    return job


@bp.get("/subscribers/import/<int:job_id>")
@require(SUBSCRIBERS_MANAGE)
def import_job(job_id: int):
    """A job's page: the dry run's (or the import's) outcome per row, and while it runs,
    its progress; a job whose worker stopped is shown failed, with a retry button."""
    job = _notice_stalled(_job(job_id))
    outcome = request.args.get("outcome", "")
    outcome = outcome if outcome in OUTCOMES else ""
    page = page_number()
    rows, matching = import_jobs.rows_of(job, outcome, page, ROWS_PER_PAGE)
    pages = page_count(matching, ROWS_PER_PAGE)

    def page_url(n: int) -> str:
        return url_for("console.import_job", job_id=job.id, page=n, **({"outcome": outcome} if outcome else {}))

    return render_template(
        "console/import_job.html",
        job=job,
        rows=rows,
        outcome=outcome,
        outcomes=OUTCOMES,
        result={"page": min(page, pages), "pages": pages},
        page_url=page_url,
        matching=matching,
        button=ButtonForm(formdata=None),
        running=job.status not in (CHECKED, DONE, FAILED),
        retryable=job.status == FAILED and bool(job.content),
    )


@bp.get("/subscribers/import/<int:job_id>/progress")
@require(SUBSCRIBERS_MANAGE)
def import_progress(job_id: int):
    """The job's progress as JSON, for ``import-progress.js``."""
    job = _notice_stalled(_job(job_id))
    return jsonify(status=job.status, done=job.rows_done, total=job.rows_total)


@bp.post("/subscribers/import/<int:job_id>/run")
@require(SUBSCRIBERS_MANAGE)
def import_run(job_id: int):
    if not ButtonForm().validate_on_submit():
        abort(400)
    job = _job(job_id)
    s = db()
    try:
        import_jobs.queue(s, job)
    except import_jobs.JobRefused as err:
        s.rollback()
        return render_template("console/message.html", title="This import cannot start", message=str(err)), 409
    audit.record(s, g.staff, "subscriber.import", job, after={"dry_run": job.dry_run_counts}, ip=client_ip())
    s.commit()
    rt().queue.send(run_import, job.id)  # after the commit: the worker must find it queued
    return redirect(url_for("console.import_job", job_id=job.id))


@bp.post("/subscribers/import/<int:job_id>/retry")
@require(SUBSCRIBERS_MANAGE)
def import_retry(job_id: int):
    """Queue again an import whose worker stopped."""
    if not ButtonForm().validate_on_submit():
        abort(400)
    job = _notice_stalled(_job(job_id))
    s = db()
    try:
        import_jobs.retry(s, job)
    except import_jobs.JobRefused as err:
        s.rollback()
        return render_template("console/message.html", title="This import cannot be retried", message=str(err)), 409
    audit.record(s, g.staff, "subscriber.import.retry", job, ip=client_ip())
    s.commit()
    rt().queue.send(run_import, job.id)  # after the commit: the worker must find it queued
    return redirect(url_for("console.import_job", job_id=job.id))
