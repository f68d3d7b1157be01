"""``mailer bounces``: bounce and complaint reports.

A shell over :mod:`mailer.delivery.bounces`: read and parse the reports, apply them in one
transaction, print the tally.
"""

from __future__ import annotations

import click

from mailer import runtime
from mailer.cli._common import fail
from mailer.delivery import bounces as b


@click.group("bounces")
def bounces() -> None:
    """Bounce and complaint reports."""


@bounces.command("process")
@click.argument("source", required=False, default="-")
def bounces_process(source: str) -> None:
    """Read DSN bounces and ARF complaints from SOURCE (a maildir, an mbox file, or
    `-` for stdin) and apply them: hard bounces and complaints suppress the address."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.mail.verp import ReturnPaths

    rt = runtime.current()
    paths = ReturnPaths.from_settings(rt.settings)
    try:
        reports = [r for msg in b.read_messages(source) for r in b.parse(msg, paths)]
    except (ValueError, OSError) as err:
        fail(str(err))
    with rt.db.transaction() as s:
        tally = b.apply(s, reports)
    click.echo(
        f"hard bounces {tally.hard}, soft bounces {tally.soft}, complaints "
        f"{tally.complaints}, unmatched {tally.unmatched}; suppressed "
        f"{len(tally.suppressed)} address(es)"
    )
