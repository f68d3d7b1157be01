"""``mailer subscribers``: import, export, purge, revoke and suppress.

Shells over the :mod:`subscribers` domain: each opens a transaction, calls it and prints.
Changes and exports land in the audit log as ``cli:<os user>``, like the console's (by
subscriber id, never by address).
"""

from __future__ import annotations

import csv
import io
import sys

import click

from mailer import runtime
from mailer.cli._common import cli_actor, fail
from mailer.text import strip_controls
from mailer.validation import InvalidInput


class _Rollback(Exception):
    """Raised inside a transaction to leave the database as it was."""


def _open(path: str, mode: str, encoding: str):
    """A CSV text stream (newline="" as the csv module wants) on a file or stdin/stdout."""
    if path == "-":
        stream = sys.stdin.buffer if mode == "r" else sys.stdout.buffer
        return io.TextIOWrapper(stream, encoding=encoding, newline="", write_through=True)
    return open(path, mode, encoding=encoding, newline="")


@click.group("subscribers")
def subscribers() -> None:
    """Subscribers: CSV import and export, purge, link revocation, suppression."""


def _print_report(report, limit: int = 50) -> None:
    c = report.counts
    click.echo(", ".join(f"{k} {c[k]}" for k in ("created", "updated", "duplicate", "suppressed", "invalid")))
    if report.ignored_columns:
        click.echo(strip_controls(f"Ignored columns: {', '.join(report.ignored_columns)}", keep=""))
    notable = [r for r in report.rows if r.outcome in ("invalid", "duplicate", "suppressed")]
    for r in notable[:limit]:
        click.echo(strip_controls(f"  line {r.line}: {r.outcome:10} {r.email}  {r.message}", keep=""))
    if len(notable) > limit:
        click.echo(f"  ... and {len(notable) - limit} more (use --report FILE for every row)")


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--source", default=None, help="Where the list came from (recorded in the consent ledger). Default: the file name."
)
@click.option(
    "--basis",
    type=click.Choice(["consent", "legitimate-interests"]),
    required=True,
    help="Lawful basis: 'consent' (they opted in elsewhere) or 'legitimate-interests' "
    "(corporate subscribers such as GP practices).",
)
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows even if some are invalid.")
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the outcome of every row to this CSV file.",
)
def import_cmd(
    file: str, source: str | None, basis: str, skip_invalid: bool, dry_run: bool, report_path: str | None
) -> None:
    """Import subscribers from a CSV FILE (columns found by header name; see README).

    Imported people are confirmed with the given basis. Addresses on the suppression list
    are never imported. Nothing is written unless the whole import succeeds.
    """
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff import audit
    from subscribers.importer import ImportError_, ImportRefused, import_csv

    report = None
    try:
        with runtime.current().db.transaction() as s:
            with _open(file, "r", "utf-8-sig") as fh:
                report = import_csv(s, fh, source=source or file, basis=basis, skip_invalid=skip_invalid)
            if dry_run:
                raise _Rollback
            audit.record(s, cli_actor(), "subscriber.import.done", ("subscribers", None), after=dict(report.counts))
    except _Rollback:
        pass
    except ImportRefused as refused:
        report = refused.report
        _print_report(report)
        _write_report(report_path, report)
        fail("some rows are invalid, so nothing was imported. Fix them, or use --skip-invalid.")
    except ImportError_ as err:
        fail(str(err))
    except UnicodeDecodeError:
        fail("the file is not UTF-8 text; save it as CSV UTF-8 and try again.")
    _print_report(report)
    _write_report(report_path, report)
    click.echo("Dry run: nothing was written." if dry_run else "Import complete.")


def _write_report(path: str | None, report) -> None:
    if not path:
        return
    # loaded when the command runs, so `mailer --help` stays fast
    from subscribers.export import spreadsheet_safe

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["line", "email", "outcome", "message"])
        for r in report.rows:
            w.writerow([r.line, spreadsheet_safe(r.email), r.outcome, spreadsheet_safe(r.message)])


@subscribers.command("export")
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--status", type=click.Choice(["pending", "confirmed", "unsubscribed"]), default=None)
def export_cmd(file: str, status: str | None) -> None:
    """Write subscribers as CSV to FILE (default: standard output)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff import audit
    from subscribers.export import export_csv

    with runtime.current().db.transaction() as s:
        with _open(file, "w", "utf-8") as fh:
            n = export_csv(s, fh, status)
        audit.record(s, cli_actor(), "subscriber.export", ("subscribers", None), after={"rows": n, "status": status})
    if file != "-":
        click.echo(f"Exported {n} subscribers to {file}.")


@subscribers.command("purge-unconfirmed")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Age of a pending request to purge (default: PURGE_UNCONFIRMED_AFTER_DAYS).",
)
def purge_cmd(days: int | None) -> None:
    """Delete subscription requests nobody confirmed in time."""
    # loaded when the command runs, so `mailer --help` stays fast
    from subscribers.housekeeping import purge_unconfirmed

    rt = runtime.current()
    days = days or rt.settings.purge_unconfirmed_days
    with rt.db.transaction() as s:
        n = purge_unconfirmed(s, days)
    click.echo(f"Purged {n} unconfirmed subscribers older than {days} days.")


@subscribers.command("revoke")
@click.argument("email")
def revoke_cmd(email: str) -> None:
    """Make every link already sent to EMAIL stop working."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff import audit
    from subscribers.service import find, revoke_links

    with runtime.current().db.transaction() as s:
        sub = find(s, email)
        if sub is None or sub.status == "erased":
            fail(f"No subscriber with address {email!r}.")
        revoke_links(s, sub, source="admin")
        audit.record(s, cli_actor(), "subscriber.revoke_links", sub, after={"token_version": sub.token_version})
    click.echo(f"Every earlier link for {sub.email} is revoked.")


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do it without asking (it cannot be undone).")
def erase_cmd(email: str, yes: bool) -> None:
    """Erase EMAIL's personal data (a right-to-erasure request): the subscriber, their
    group memberships and posts, inbound mail holding the address, and outbox emails to
    or from it. Works for a group member who never subscribed to the digest too."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.inbound import erasure
    from mailer.mail.outbox import remove_messages_to
    from mailer.staff import audit
    from subscribers.service import find

    rt = runtime.current()
    if not yes:
        click.confirm(f"Erase {email} for good? This cannot be undone", abort=True)
    with rt.db.transaction() as s:
        sub = find(s, email)
        if sub is not None and sub.status != "erased":
            before = {"status": sub.status}
            address = erasure.erase_subscriber(s, sub, source="admin")
            # by subscriber id: the log never holds an address
            audit.record(s, cli_actor(), "subscriber.erase", sub, before=before, after={"status": sub.status})
            done = f"Subscriber {sub.id} is erased"
        elif erasure.group_traces(s, email):  # a group member who never took the digest
            address = erasure.erase_group_person(s, email)
            audit.record(s, cli_actor(), "groups.person.erase", None, after={"groups": "erased"})
            done = "Their group memberships and posts are erased"
        else:
            fail(f"No subscriber or group member with address {email!r}.")
    removed = remove_messages_to(rt.settings.outbox_dir, address)  # after the commit
    click.echo(f"{done}; {removed} outbox email(s) holding the address removed.")


@subscribers.command("suppress")
@click.argument("email")
@click.option("--reason", type=click.Choice(["hard_bounce", "complaint", "unsubscribed"]), required=True)
def suppress_cmd(email: str, reason: str) -> None:
    """Put EMAIL on the suppression list (and unsubscribe it if subscribed)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff import audit
    from subscribers.service import find, suppress_address

    with runtime.current().db.transaction() as s:
        try:
            address = suppress_address(s, email, reason, source="admin")
        except InvalidInput as err:
            fail(f"The address {err.message}")
        sub = find(s, address)
        # by subscriber id, or no object at all: the log never holds an address
        audit.record(s, cli_actor(), "subscriber.suppress", sub or ("suppressions", None), after={"reason": reason})
    click.echo(f"{address} is suppressed ({reason}).")
