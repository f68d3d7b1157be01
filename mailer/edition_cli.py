"""Editor commands on the ``mailer edition`` group: edit, show, schedule, cancel, preview
and test-send. Shells only: each opens a transaction, calls the digest domain, prints."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from mailer import runtime
from mailer.cli import _fail, edition


def _domain_errors():
    from mailer.digest.editions import EditionError
    from mailer.validation import InvalidInput

    return (EditionError, InvalidInput)


@edition.command("edit")
@click.argument("period")
@click.option("--subject", help="Subject line (default: 'Your campaign digest - Month YYYY').")
@click.option("--preheader", help="The short line inboxes show after the subject.")
@click.option("--intro", help="The editor's note at the top ('-' reads it from standard input).")
@click.option("--featured", type=int, help="Id of an item of this edition to show first.")
@click.option("--no-featured", is_flag=True, help="Show no featured item.")
def edition_edit(period, subject, preheader, intro, featured, no_featured):
    """Set PERIOD's subject, preheader, intro note or featured item (draft or scheduled)."""
    from mailer.digest import lifecycle

    changes = {}
    if subject is not None:
        changes["subject"] = subject
    if preheader is not None:
        changes["preheader"] = preheader
    if intro is not None:
        changes["intro"] = sys.stdin.read() if intro == "-" else intro
    if featured is not None and no_featured:
        _fail("Give --featured ID or --no-featured, not both.")
    if featured is not None or no_featured:
        changes["featured_item_id"] = None if no_featured else featured
    if not changes:
        _fail("Nothing to change: give --subject, --preheader, --intro, --featured or --no-featured.")
    with runtime.current().db.transaction() as s:
        try:
            lifecycle.edit(s, lifecycle.get_edition(s, period), **changes)
        except _domain_errors() as err:
            _fail(str(err))
    click.echo(f"Updated the {period} edition: {', '.join(sorted(changes))}.")


@edition.command("show")
@click.argument("period")
def edition_show(period):
    """PERIOD's status, editor fields and sections."""
    from mailer.digest import lifecycle
    from mailer.digest.compose import load_plan

    with runtime.current().db.transaction() as s:
        try:
            ed = lifecycle.get_edition(s, period)
        except _domain_errors() as err:
            _fail(str(err))
        plan = load_plan(s, ed)
        click.echo(f"Edition {ed.period}: {ed.status}"
                   + (f" for {ed.scheduled_for:%Y-%m-%d %H:%M} UTC" if ed.scheduled_for else ""))
        click.echo(f"Subject:   {ed.subject}")
        click.echo(f"Preheader: {ed.preheader or '(generated)'}")
        click.echo(f"Intro:     {ed.intro or '(none)'}")
        click.echo(f"Featured:  {ed.featured_item_id or '(none)'}")
        seen: set[int] = set()
        for section in plan.sections:
            click.echo(f"  {section.name}")
            for item in section.items:
                mark = "+" if item.id in seen else " "
                seen.add(item.id)
                click.echo(f"   {mark}{item.id:5}  {item.dated}  {item.title[:70]}")
        if len(seen) < len(plan.placements):
            click.echo("  (+ also under an earlier topic: each reader gets it once, under the first "
                       "of its topics they chose)")


@edition.command("schedule")
@click.argument("period")
@click.option("--at", "at", required=True, help="'YYYY-MM-DD HH:MM' in SCHEDULE_TIMEZONE")
def edition_schedule(period, at):
    """Send PERIOD's edition at a set time (the scheduler process starts it)."""
    from mailer.digest import lifecycle

    tz = ZoneInfo(runtime.current().settings.schedule_timezone)
    try:
        when = datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    except ValueError:
        _fail(f"--at must look like 2026-12-01 09:00, not {at!r}.")
    with runtime.current().db.transaction() as s:
        try:
            lifecycle.schedule(s, lifecycle.get_edition(s, period), when)
        except _domain_errors() as err:
            _fail(str(err))
    click.echo(f"The {period} edition will be sent at {when:%Y-%m-%d %H:%M %Z}.")


@edition.command("unschedule")
@click.argument("period")
def edition_unschedule(period):
    """Put a scheduled edition back to draft."""
    from mailer.digest import lifecycle

    with runtime.current().db.transaction() as s:
        try:
            lifecycle.unschedule(s, lifecycle.get_edition(s, period))
        except _domain_errors() as err:
            _fail(str(err))
    click.echo(f"The {period} edition is a draft again.")


def _profile(s, subscriber, topics, partners):
    from mailer.digest import preview

    if subscriber and (topics or partners):
        raise preview.PreviewError("Preview as --subscriber or as --topic/--partner choices, not both.")
    if subscriber:
        return preview.as_subscriber(s, subscriber)
    return preview.as_choices(s, topics, partners)


_profile_options = [
    click.option("--subscriber", help="Preview as this subscriber (email address)."),
    click.option("--topic", "topics", multiple=True, help="Topic slug (repeatable)."),
    click.option("--partner", "partners", multiple=True, help="Partner slug (repeatable)."),
]


def _with_profile(f):
    for option in reversed(_profile_options):
        f = option(f)
    return f


@edition.command("preview")
@click.argument("period")
@_with_profile
@click.option("--text", is_flag=True, help="The plain-text part instead of the HTML.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def edition_preview(period, subscriber, topics, partners, text, output):
    """Render one copy of PERIOD's edition, as a subscriber or as chosen topics/partners."""
    from mailer.digest import lifecycle, preview
    from mailer.digest.compose import copy_for

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            who = _profile(s, subscriber, topics, partners)
            prepared = preview.prepared(s, lifecycle.get_edition(s, period), rt.settings)
        except _domain_errors() as err:
            _fail(str(err))
    copy = copy_for(prepared, who)
    if copy is None:
        _fail("Those choices match no item in this edition: that subscriber would be skipped.")
    body = copy[1] if text else copy[0]
    if output:
        output.write_text(body, encoding="utf-8")
        click.echo(f"Wrote {output} ({len(body.encode('utf-8')):,} bytes).")
    else:
        click.echo(body)


@edition.command("preview-link")
@click.argument("period")
@click.option("--revoke", is_flag=True,
              help="Make every preview link of PERIOD issued so far stop working (issues none).")
def edition_preview_link(period, revoke):
    """A link (valid 24 hours) to PERIOD's preview page: desktop and mobile, test-send."""
    from mailer.digest import lifecycle, preview

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            ed = lifecycle.get_edition(s, period)
        except _domain_errors() as err:
            _fail(str(err))
        if revoke:
            preview.revoke_preview_links(ed)
        else:
            token = preview.preview_token(rt.settings, ed)
    if revoke:
        click.echo(f"Every preview link of the {period} edition issued so far has stopped working.")
    else:
        click.echo(f"{rt.settings.base_url}/preview/{token}")


@edition.command("test-send")
@click.argument("period")
@click.option("--to", "to_address", required=True, help="Where to send the test.")
@_with_profile
def edition_test_send(period, to_address, subscriber, topics, partners):
    """Send one test copy of PERIOD's edition to any address, now. Its links act on nobody."""
    from mailer.delivery.transport import PermanentFailure, TransientFailure
    from mailer.digest import lifecycle, preview

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            who = _profile(s, subscriber, topics, partners)
            prepared = preview.prepared(s, lifecycle.get_edition(s, period), rt.settings)
            envelope = preview.make_test_send(prepared, rt.settings, who, to_address)
        except _domain_errors() as err:
            _fail(str(err))
    try:
        rt.transport.send(envelope.sender, envelope.recipient, envelope.data)
    except (PermanentFailure, TransientFailure) as err:
        _fail(f"The test could not be sent: {err}")
    finally:
        rt.transport.close()
    click.echo(f"Sent a test of the {period} edition to {envelope.recipient}.")
