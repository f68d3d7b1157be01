"""Importing subscribers in the console: the dry run shows every row's outcome and writes
nothing; the import that follows agrees with it; progress; refusals; the audit trail."""

from __future__ import annotations

import dataclasses
import io
import re
import time

import pytest
from sqlalchemy import func, select

from mailer.staff.models import AuditEntry
from subscribers import import_jobs, suppression
from subscribers.models import ConsentEvent, ImportJob, Subscriber
from tests.conftest import BOTH_DIALECTS, csrf_token
from tests.factories import checked_import
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures)

CSV = (
    "Email Address,Name,Organisation,Topics,Partners\n"
    "new.one@surgery.example,New One,Hill Surgery,heart-health,\n"
    "equality.lead@heart-of-manchester.example.org,Amina R.,,,\n"  # a demo subscriber: updated
    "NEW.ONE@surgery.example,Again,,heart-health,\n"  # the same address again
    "gone@example.org,Gone,,policy,\n"  # suppressed
    "not an address,Bad,,policy,\n"
    "two@trust.example,Two,North Trust,mental-health;policy,afiya-trust\n"
)
EXPECTED = {"created": 2, "updated": 1, "duplicate": 1, "suppressed": 1, "invalid": 1}


@pytest.fixture
def editor(app, staff, clock, demo, session):  # noqa: F811
    suppression.suppress(session, "gone@example.org", "unsubscribed", "test")
    session.commit()
    client = app.test_client()
    log_in(client, staff["editor"], clock)
    return client


def upload(client, content=CSV, skip_invalid=True, basis="consent", token=None):
    token = token or csrf_token(client.get("/admin/subscribers/import").text)
    data = {
        "csrf_token": token,
        "file": (io.BytesIO(content.encode() if isinstance(content, str) else content), "list.csv"),
        "basis": basis,
        "source": "network list",
    }
    if skip_invalid:
        data["skip_invalid"] = "y"
    return client.post("/admin/subscribers/import", data=data, content_type="multipart/form-data")


def snapshot(session):
    session.expire_all()
    return (
        sorted((s.email, s.name, s.organisation, s.status) for s in session.scalars(select(Subscriber))),
        session.scalar(select(func.count()).select_from(ConsentEvent)),
    )


def counts_on(page: str) -> dict:
    return {o: int(n) for o, n in re.findall(r'id="count-(\w+)">(\d+)<', page)}


@BOTH_DIALECTS
def test_the_dry_run_writes_nothing_and_the_import_agrees_with_it(editor, session, queue):
    before = snapshot(session)
    r = upload(editor)
    assert r.status_code == 302
    page = editor.get(r.headers["Location"]).text
    assert "Dry run: nothing has been written yet" in page
    assert counts_on(page) == EXPECTED
    assert "not an address" in page and "appears earlier in the file" in page
    assert snapshot(session) == before  # nothing written

    job = session.scalars(select(ImportJob)).one()
    token = csrf_token(page)
    r = editor.post(f"/admin/subscribers/import/{job.id}/run", data={"csrf_token": token})
    assert r.status_code == 302
    queue()
    page = editor.get(f"/admin/subscribers/import/{job.id}").text
    assert "The import is complete." in page
    session.expire_all()
    job = session.get(ImportJob, job.id)
    assert job.counts == job.dry_run_counts == EXPECTED and job.content == ""  # the file is gone
    rows_then = [r[:3] for r in job.report]
    assert ["new.one@surgery.example", "created"] == rows_then[0][1:]
    emails = {s.email for s in session.scalars(select(Subscriber))}
    assert {"new.one@surgery.example", "two@trust.example"} <= emails and "gone@example.org" not in emails
    assert session.scalar(select(Subscriber).where(Subscriber.email == "two@trust.example")).consent_basis == "consent"
    # the same file again: now everything it creates already exists
    r = upload(editor)
    again = counts_on(editor.get(r.headers["Location"]).text)
    assert again == {**EXPECTED, "created": 0, "updated": 3}


def test_import_steps_are_audited(editor, session, queue):
    r = upload(editor)
    job_id = int(r.headers["Location"].rsplit("/", 1)[1])
    token = csrf_token(editor.get(r.headers["Location"]).text)
    editor.post(f"/admin/subscribers/import/{job_id}/run", data={"csrf_token": token})
    queue()
    session.expire_all()
    trail = session.scalars(select(AuditEntry).where(AuditEntry.object_type == "import_jobs").order_by(AuditEntry.id))
    trail = [(e.actor, e.action, e.object_id) for e in trail]
    assert trail == [
        ("editor", "subscriber.import.check", str(job_id)),
        ("editor", "subscriber.import", str(job_id)),
        ("editor", "subscriber.import.done", str(job_id)),
    ]
    # an import runs once: a second press changes nothing
    r = editor.post(f"/admin/subscribers/import/{job_id}/run", data={"csrf_token": token})
    assert r.status_code == 409 and "already been started" in r.text


def test_invalid_rows_without_skip_invalid_cannot_be_imported(editor, session):
    r = upload(editor, skip_invalid=False)
    page = editor.get(r.headers["Location"]).text
    assert "1 invalid rows" in page and "/run" not in page
    job = session.scalars(select(ImportJob)).one()
    token = csrf_token(editor.get("/admin/subscribers/import").text)
    r = editor.post(f"/admin/subscribers/import/{job.id}/run", data={"csrf_token": token})
    assert r.status_code == 409
    session.expire_all()
    assert session.get(ImportJob, job.id).status == "checked"


@pytest.mark.parametrize(
    "content, message",
    [
        ("name,organisation\nA,B\n", "no email column"),
        (b"email\n" + "caf\xe9@example.org\n".encode("latin-1"), "not UTF-8"),
        ("", "The file is empty"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_with_a_clear_message(editor, session, content, message):
    r = upload(editor, content)
    assert r.status_code == 400 and message in r.text and 'aria-invalid="true"' in r.text
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_uploads_need_their_csrf_token_and_may_be_larger_than_other_forms(editor, session):
    r = upload(editor, token="not-the-token")
    assert r.status_code == 400 and session.scalar(select(func.count()).select_from(ImportJob)) == 0
    big = "email,topics\n" + "".join(f"reader{i}@nhs.example,policy\n" for i in range(20_000))
    assert len(big) > 256 * 1024  # beyond the app's limit for every other form
    r = upload(editor, big)
    assert r.status_code == 302
    assert counts_on(editor.get(r.headers["Location"]).text)["created"] == 20_000


def test_progress_is_reported_while_running_and_the_page_refreshes_without_script(editor, session, rt, monkeypatch):
    upload(editor)
    job = session.scalars(select(ImportJob)).one()
    import_jobs.queue(session, job)
    job.rows_done = 3
    session.commit()
    page = editor.get(f"/admin/subscribers/import/{job.id}").text
    # the shipped intervals (3 s, 0.5 s then 1 s, 5 s after an error) scaled by the test
    # settings' console_poll_scale of 0.1
    assert '<noscript><meta http-equiv="refresh" content="1"></noscript>' in page
    assert 'data-poll-first="50" data-poll-every="100" data-poll-retry="500"' in page
    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings, console_poll_scale=1.0))  # as shipped
    page = editor.get(f"/admin/subscribers/import/{job.id}").text
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in page
    assert 'data-poll-first="500" data-poll-every="1000" data-poll-retry="5000"' in page
    assert 'src="/static/import-progress.js"' in page and '<progress id="import-bar" max="6" value="3">' in page
    assert editor.get(f"/admin/subscribers/import/{job.id}/progress").get_json() == {
        "status": "queued",
        "done": 3,
        "total": 6,
    }


def test_the_actor_reports_progress_in_steps(rt, session, demo):
    rows = "email,topics\n" + "".join(f"r{i}@nhs.example,policy\n" for i in range(2500))
    job = session.get(ImportJob, checked_import(rt, rows, skip_invalid=False, queued=True).id)
    seen = []
    import_jobs.start(session, job)
    import_jobs.run(session, job, progress=seen.append)
    session.commit()
    assert seen == [998, 1998, 2500] and job.status == "done" and job.rows_done == 2500


def test_unconfirmed_checks_are_purged_after_a_day(rt, session, demo):
    from datetime import timedelta

    from mailer.db import utcnow

    checked_import(rt, CSV)
    assert import_jobs.purge_stale(session, utcnow() + timedelta(hours=23)) == 0
    assert import_jobs.purge_stale(session, utcnow() + timedelta(hours=25)) == 1


def test_the_import_page_lists_earlier_imports_newest_first_in_pages(rt, editor, session):
    for i in range(22):
        checked_import(rt, CSV, filename=f"list-{i}.csv")
    first = editor.get("/admin/subscribers/import").text
    second = editor.get("/admin/subscribers/import?page=2").text
    assert first.index("list-21.csv") < first.index("list-2.csv") and "list-1.csv" not in first
    assert "list-1.csv" in second and "list-0.csv" in second and "Page 2 of 2." in second


def test_an_import_whose_worker_died_is_shown_failed_and_can_be_retried(editor, session, clock, queue):  # noqa: F811
    before = snapshot(session)
    upload(editor)
    job = session.scalars(select(ImportJob)).one()
    import_jobs.queue(session, job)
    assert import_jobs.start(session, job)  # a worker claimed it...
    import_jobs.beat(session, job.id, rows_done=3)
    session.commit()  # ...checked three rows, and died before its commit
    page = editor.get(f"/admin/subscribers/import/{job.id}").text
    assert "Importing…" in page and "Retry the import" not in page
    clock.t = time.time() + import_jobs.HEARTBEAT_TIMEOUT.total_seconds() - 60  # still within the timeout
    assert "Importing…" in editor.get(f"/admin/subscribers/import/{job.id}").text
    clock.t += 120
    assert editor.get(f"/admin/subscribers/import/{job.id}/progress").get_json()["status"] == "failed"
    page = editor.get(f"/admin/subscribers/import/{job.id}").text
    assert "The import failed: nothing was written" in page
    assert "The worker stopped" in page and "after checking 3 of 6 rows. Nothing was written" in page
    assert "Retry the import" in page
    assert snapshot(session) == before
    session.expire_all()
    stalled = session.scalars(select(AuditEntry).where(AuditEntry.action == "subscriber.import.stalled")).all()
    assert [(e.actor, e.object_id) for e in stalled] == [("system", str(job.id))]
    # retry: the file was kept, so it runs again and finishes
    r = editor.post(
        f"/admin/subscribers/import/{job.id}/retry", data={"csrf_token": csrf_token(page)}, follow_redirects=False
    )
    assert r.status_code == 302
    queue()
    session.expire_all()
    job = session.get(ImportJob, job.id)
    assert job.status == "done" and job.counts["created"] == 2 and job.content == ""
    assert session.scalar(select(AuditEntry.actor).where(AuditEntry.action == "subscriber.import.retry")) == "editor"
    # a finished import cannot be retried
    r = editor.post(f"/admin/subscribers/import/{job.id}/retry", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 409


def test_a_running_worker_keeps_its_heartbeat(rt, session, demo, monkeypatch):
    """The actor's keeper beats while the import runs, so a slow import is never taken for
    a dead one."""
    from datetime import timedelta

    from mailer.actors import imports as actor

    job = checked_import(rt, CSV, queued=True)
    monkeypatch.setattr(import_jobs, "HEARTBEAT_EVERY", timedelta(milliseconds=20))
    real_run, beats = import_jobs.run, []

    def slow_run(s, j, progress=None):
        with rt.db.transaction() as p:  # what the console would read mid-run
            beats.append(p.get(ImportJob, j.id).heartbeat_at)
        import threading

        threading.Event().wait(0.2)  # the keeper beats meanwhile (PostgreSQL: never blocked)
        with rt.db.transaction() as p:
            beats.append(p.get(ImportJob, j.id).heartbeat_at)
        return real_run(s, j, progress)

    monkeypatch.setattr(import_jobs, "run", slow_run)
    actor.run_import(job.id)  # the plain function: the job runs here
    session.expire_all()
    assert session.get(ImportJob, job.id).status == "done"
    assert beats[0] is not None and beats[1] > beats[0]
