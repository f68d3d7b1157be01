"""CSV import and export through the `mailer subscribers` commands."""

from __future__ import annotations

import csv

import pytest
from sqlalchemy import func, select

from subscribers import service, suppression
from subscribers.models import ConsentEvent, Subscriber
from tests.conftest import BOTH_DIALECTS

pytestmark = BOTH_DIALECTS  # the dialect matters here: see tests/conftest.py

GOOD = """E-mail Address,Full name,Organization,Type,ODS code,Topics,Partners,Notes
lead@riverside.example.org,Priya Patel,Riverside Surgery,GP practice,a81001,heart-health;Policy,,call back
network@trust.example.org,,Heart of Manchester BME Staff Network,bme_staff_network,,,afiya-trust|naz-project-london,
LEAD@riverside.example.org,Priya again,,,,policy,,
practice.manager@thepeaks.example.org,David Okafor,,,,,race-equality-foundation,
gone@example.org,Gone,,,,policy,,
"""


@pytest.fixture
def cli(app):
    from mailer.cli import main

    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(main, ["subscribers", *args])


def _count(rt):
    with rt.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Subscriber))


def test_import_maps_headers_and_reports_every_row(cli, rt, demo, tmp_path):
    with rt.db.transaction() as s:
        suppression.suppress(s, "Gone@example.org", "complaint", "fbl")
    path = tmp_path / "list.csv"
    path.write_text(GOOD, encoding="utf-8")
    report = tmp_path / "report.csv"
    result = cli(
        "import", str(path), "--basis", "legitimate-interests", "--source", "ccg-2026", "--report", str(report)
    )
    assert result.exit_code == 0, result.output
    assert "created 2, updated 1, duplicate 1, suppressed 1, invalid 0" in result.output
    assert "Ignored columns: Notes" in result.output
    rows = list(csv.DictReader(report.open()))
    assert [(r["line"], r["outcome"]) for r in rows] == [
        ("2", "created"),
        ("3", "created"),
        ("4", "duplicate"),
        ("5", "updated"),
        ("6", "suppressed"),
    ]
    with rt.db.transaction() as s:
        lead = service.find(s, "lead@riverside.example.org")
        assert (lead.status, lead.consent_basis, lead.organisation_type, lead.practice_code) == (
            "confirmed",
            "legitimate-interests",
            "gp_practice",
            "A81001",
        )
        assert sorted(t.slug for t in lead.topics) == ["heart-health", "policy"]
        event = s.scalar(select(ConsentEvent).where(ConsentEvent.subscriber_id == lead.id))
        assert (event.kind, event.source, event.detail) == (
            "imported",
            "import",
            "basis=legitimate-interests; import=ccg-2026",
        )
        network = service.find(s, "network@trust.example.org")
        assert network.topics == [] and len(network.partners) == 2
        david = service.find(s, "practice.manager@thepeaks.example.org")
        assert david.name == "David Okafor" and [t.slug for t in david.topics] == ["heart-health"]  # own choice kept
        assert service.find(s, "gone@example.org") is None
        assert {r.email for r in service.recipients(s)} >= {"lead@riverside.example.org"}


def test_backslashes_and_copy_markers_in_a_row_are_stored_as_written(cli, rt, demo, tmp_path):
    """On PostgreSQL rows go in as COPY text, where a backslash starts an escape and \\N
    means NULL: a partner's spreadsheet may hold either, and must come back unchanged."""
    path = tmp_path / "list.csv"
    rows = [
        ("ann@example.org", "Ann \\N", "C:\\Surgery\\new\\tab", "policy"),
        ("ben@example.org", "\\", "\\N", "policy"),
    ]
    path.write_text("email,name,organisation,topics\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    result = cli("import", str(path), "--basis", "consent", "--source", "feb\\list")
    assert result.exit_code == 0, result.output
    with rt.db.transaction() as s:
        for email, name, organisation, _ in rows:
            person = service.find(s, email)
            assert (person.name, person.organisation) == (name, organisation)
            assert [t.slug for t in person.topics] == ["policy"]
            event = s.scalar(select(ConsentEvent).where(ConsentEvent.subscriber_id == person.id))
            assert event.detail == "basis=consent; import=feb\\list" and event.at == person.created_at


def test_an_invalid_row_means_nothing_is_imported(cli, rt, demo, tmp_path):
    before = _count(rt)
    path = tmp_path / "list.csv"
    path.write_text(
        "email,topics\nok@example.org,policy\nbroken-address,policy\n"
        "nochoice@example.org,\nunknown@example.org,astrology\n",
        encoding="utf-8",
    )
    result = cli("import", str(path), "--basis", "consent")
    assert result.exit_code == 1
    assert "line 3: invalid    broken-address" in result.output
    assert "line 4: invalid" in result.output and "Choose at least one topic or partner" in result.output
    assert "unknown topic 'astrology'" in result.output
    assert "nothing was imported" in result.output
    assert _count(rt) == before
    # With --skip-invalid the valid row goes in; --dry-run writes nothing.
    assert cli("import", str(path), "--basis", "consent", "--skip-invalid", "--dry-run").exit_code == 0
    assert _count(rt) == before
    result = cli("import", str(path), "--basis", "consent", "--skip-invalid")
    assert result.exit_code == 0 and "created 1" in result.output
    assert _count(rt) == before + 1


def test_a_failure_mid_import_leaves_the_database_as_it_was(cli, rt, demo, tmp_path, monkeypatch):
    import subscribers.importer as importer

    before = _count(rt)
    path = tmp_path / "list.csv"
    path.write_text("email,topics\n" + "".join(f"p{i}@example.org,policy\n" for i in range(12000)))
    calls = {"n": 0}

    def failing(write):  # the database gives out after a batch (four tables) is in
        def attempt(*args):
            calls["n"] += 1
            if calls["n"] > 4:
                raise RuntimeError("connection lost")
            return write(*args)

        return attempt

    # A table's rows go through _copy_rows on PostgreSQL, _insert_values on SQLite.
    monkeypatch.setattr(importer, "_insert_values", failing(importer._insert_values))
    monkeypatch.setattr(importer, "_copy_rows", failing(importer._copy_rows))
    result = cli("import", str(path), "--basis", "consent")
    assert result.exit_code != 0 and calls["n"] == 5
    assert _count(rt) == before


def test_an_invalid_row_after_batches_were_written_still_imports_nothing(cli, rt, demo, tmp_path):
    # On PostgreSQL the first batches are written while the file is still being read; a
    # bad row near the end must take them back out.
    before = _count(rt)
    path = tmp_path / "list.csv"
    path.write_text(
        "email,topics\n" + "".join(f"p{i}@example.org,policy\n" for i in range(12000)) + "not-an-address,policy\n"
    )
    result = cli("import", str(path), "--basis", "consent")
    assert result.exit_code == 1 and "line 12002: invalid" in result.output
    assert _count(rt) == before
    result = cli("import", str(path), "--basis", "consent", "--skip-invalid")
    assert result.exit_code == 0 and "created 12000" in result.output
    with rt.db.transaction() as s:
        assert _count(rt) == before + 12000
        assert s.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.kind == "imported")) >= 12000
        last = service.find(s, "p11999@example.org")
        assert [t.slug for t in last.topics] == ["policy"] and last.status == "confirmed"


def test_import_refuses_files_it_cannot_read(cli, demo, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("name,organisation\nPriya,Riverside\n")
    result = cli("import", str(path), "--basis", "consent")
    assert result.exit_code == 1 and "no email column" in result.output
    path.write_bytes("email,topics\nj\xf6rg@example.org,policy\n".encode("latin-1"))
    result = cli("import", str(path), "--basis", "consent")
    assert result.exit_code == 1 and "not UTF-8" in result.output
    assert cli("import", str(path)).exit_code == 2  # --basis is required


def test_export_round_trips_through_import(cli, rt, demo, tmp_path):
    out = tmp_path / "out.csv"
    result = cli("export", str(out))
    assert result.exit_code == 0 and "Exported 3 subscribers" in result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    amina = next(r for r in rows if r["email"].startswith("equality.lead"))
    assert amina["topics"] == "equality-practice;sexual-health" and amina["partners"] == "naz-project-london"
    assert amina["status"] == "confirmed"
    result = cli("import", str(out), "--basis", "consent")
    assert result.exit_code == 0 and "created 0, updated 3" in result.output


FORMULA_EMAILS = ["=1+2@example.org", "+441234@example.org", "-sum@example.org", "'quoted@example.org"]


def test_export_defuses_formulas_in_every_text_column_and_imports_back(cli, rt, demo, tmp_path):
    """Addresses may start with = + - or ': the email column is defused like the names, and
    an import of the export restores every value exactly."""
    with rt.db.transaction() as s:
        for i, email in enumerate(FORMULA_EMAILS):
            s.add(
                Subscriber(
                    email=email,
                    status="confirmed",
                    name=["@SUM(A1)", "=cmd", "-2", "'Tis"][i],
                    organisation='\t=HYPERLINK("https://evil.example")' if i == 0 else "\r+1",
                )
            )
    out = tmp_path / "out.csv"
    assert cli("export", str(out)).exit_code == 0
    rows = list(csv.reader(out.open(encoding="utf-8", newline="")))
    for row in rows[1:]:
        for value in row:
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    by_email = {r[0]: r for r in rows[1:]}
    assert by_email["'=1+2@example.org"][1:3] == ["'@SUM(A1)", '\'\t=HYPERLINK("https://evil.example")']
    assert by_email["''quoted@example.org"][1] == "''Tis"

    # The import of the export finds every address again and leaves every name as it was.
    result = cli("import", str(out), "--basis", "consent")
    assert result.exit_code == 0 and "created 0, updated 7," in result.output, result.output
    with rt.db.transaction() as s:
        names = {e: service.find(s, e).name for e in FORMULA_EMAILS}
    assert names == {
        "=1+2@example.org": "@SUM(A1)",
        "+441234@example.org": "=cmd",
        "-sum@example.org": "-2",
        "'quoted@example.org": "'Tis",
    }


def test_purge_revoke_and_suppress_commands(cli, rt, demo):
    from datetime import timedelta

    from mailer.db import utcnow

    with rt.db.transaction() as s:
        s.add(Subscriber(email="stale@example.org", status="pending", requested_at=utcnow() - timedelta(days=45)))
    result = cli("purge-unconfirmed")
    assert result.exit_code == 0 and "Purged 1 unconfirmed subscribers older than 30 days" in result.output
    with rt.db.transaction() as s:
        v = service.find(s, "practice.manager@thepeaks.example.org").token_version
    assert cli("revoke", "practice.manager@thepeaks.example.org").exit_code == 0
    with rt.db.transaction() as s:
        assert service.find(s, "practice.manager@thepeaks.example.org").token_version == v + 1
    assert cli("revoke", "nobody@example.org").exit_code == 1
    result = cli("suppress", "practice.manager@thepeaks.example.org", "--reason", "hard_bounce")
    assert result.exit_code == 0
    refused = cli("suppress", "not-an-address", "--reason", "hard_bounce")
    assert refused.exit_code == 1
    assert "The address is not a valid email address (An email address must have an @-sign.)." in refused.output
    with rt.db.transaction() as s:
        assert "practice.manager@thepeaks.example.org" not in {r.email for r in service.recipients(s)}


def test_purge_job_runs_from_the_queue(rt, demo, queue):
    from datetime import timedelta

    from mailer.actors.housekeeping import purge_unconfirmed_job
    from mailer.db import utcnow

    with rt.db.transaction() as s:
        s.add(Subscriber(email="stale@example.org", status="pending", requested_at=utcnow() - timedelta(days=45)))
    rt.queue.send(purge_unconfirmed_job)
    queue()
    with rt.db.transaction() as s:
        assert service.find(s, "stale@example.org") is None


def test_subscriber_commands_land_in_the_audit_log_without_addresses(cli, rt, demo, tmp_path):
    import getpass

    from mailer.staff import audit

    path = tmp_path / "list.csv"
    path.write_text(GOOD, encoding="utf-8")
    assert cli("import", str(path), "--basis", "consent", "--dry-run").exit_code == 0  # a dry run changes nothing
    assert cli("import", str(path), "--basis", "consent").exit_code == 0
    assert cli("export", str(tmp_path / "out.csv"), "--status", "confirmed").exit_code == 0
    assert cli("revoke", "lead@riverside.example.org").exit_code == 0
    assert cli("suppress", "lead@riverside.example.org", "--reason", "complaint").exit_code == 0
    assert cli("suppress", "stranger@example.org", "--reason", "hard_bounce").exit_code == 0
    with rt.db.transaction() as s:
        lead = service.find(s, "lead@riverside.example.org")
        entries = audit.search(s, action="subscriber").entries[::-1]
        trail = [(e.actor, e.action, e.object_type, e.object_id) for e in entries]
        logged = str([(e.before, e.after) for e in entries])
    me = f"cli:{getpass.getuser()}"
    assert trail == [
        (me, "subscriber.import.done", "subscribers", None),
        (me, "subscriber.export", "subscribers", None),
        (me, "subscriber.revoke_links", "subscribers", str(lead.id)),
        (me, "subscriber.suppress", "subscribers", str(lead.id)),
        (me, "subscriber.suppress", "suppressions", None),
    ]
    assert entries[0].after["created"] == 3 and entries[1].after["status"] == "confirmed"
    assert "@" not in logged  # no address in the log
