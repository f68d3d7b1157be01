"""``mailer edition``: monthly editions from build to sent.

Building and editing are shells over :mod:`mailer.digest` (editions, lifecycle, preview);
sending and its control over :mod:`mailer.delivery` (control, fan-out). Each command opens a
transaction, calls the domain, enqueues after the commit and prints the outcome.
"""

from __future__ import annotations

import getpass
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from mailer import runtime
from mailer.cli._common import fail
from mailer.delivery.models import PENDING, SENDING, SENT, UNKNOWN
from mailer.digest import lifecycle, preview, status
from mailer.digest.models import PAUSED, UNFINISHED, Edition
from mailer.digest.models import SENDING as EDITION_SENDING
from mailer.digest.models import SENT as EDITION_SENT
from mailer.mail.transport import PermanentFailure, TransientFailure
from mailer.text import strip_controls
from mailer.validation import InvalidInput


@click.group("edition")
def edition() -> None:
    """Monthly editions: build, send, follow."""


def _domain_errors():
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.delivery.control import ControlError
    from mailer.digest.editions import EditionError

    return (EditionError, ControlError, InvalidInput)


@contextmanager
def _step():
    """A transaction whose domain refusals (a bad period, a move the edition's state does
    not allow) end the command with their message, nothing written."""
    with runtime.current().db.transaction() as s:
        try:
            yield s
        except _domain_errors() as err:
            fail(str(err))


def _actor() -> str:
    """Who the audit log names for a command: ``cli:<operating-system user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (a bare container)
        return "cli:unknown"


def _staff():
    """The audited actions (:mod:`mailer.staff.editions`): each command's change lands in the
    audit log beside the console's, and keeps its separation of duties."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff import editions

    return editions


# --- build and send ---------------------------------------------------------------------


@edition.command("build")
@click.option("--period", required=True, help="YYYY-MM")
def edition_build(period: str) -> None:
    """Create or rebuild PERIOD's draft edition from approved items.

    Renders it once, so a copy that could pass Gmail's clipping size is reported now."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.digest.clip import GMAIL_CLIP_BYTES, SECTION_CAP, largest_copy_bytes
    from mailer.digest.compose import prepare_edition
    from mailer.digest.editions import EditionError

    with runtime.current().db.transaction() as s:
        try:
            ed = _staff().build(s, period, _actor(), settings=runtime.current().settings)
        except EditionError as err:
            fail(str(err))
        prepared = prepare_edition(s, ed, runtime.current().settings)
        plan = prepared.plan
        click.echo(
            f"Edition {period} ({ed.status}): {len(plan.items)} items in "
            f"{len(plan.sections)} sections. Subject: {ed.subject}"
        )
        for section in plan.sections:
            click.echo(f"  {section.name}: {len(section.items)}")
        largest = largest_copy_bytes(plan, prepared.rendered)
        if largest >= GMAIL_CLIP_BYTES:
            click.echo(
                f"Warning: a reader's copy could reach {largest // 1024} KB of HTML, and Gmail "
                f"clips above {GMAIL_CLIP_BYTES // 1024} KB, hiding the footer with the "
                f"unsubscribe link. Sections already show at most {SECTION_CAP} items each; "
                f"shorten summaries or hold some items for next month.",
                err=True,
            )


@edition.command("send")
@click.argument("period")
@click.option("--wait/--no-wait", default=False, help="Show progress until every delivery is done.")
@click.option("--timeout", default=3600, show_default=True, help="Seconds to wait at most.")
def edition_send(period: str, wait: bool, timeout: int) -> None:
    """Send PERIOD's edition through the queue. Sending again sends nothing new."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.actors.digest import start_edition
    from mailer.digest.lifecycle import get_edition

    rt = runtime.current()
    with _step() as s:
        ed = get_edition(s, period)
        if not status.START.allows(ed.status):  # paused or cancelled
            fail(
                f"The {period} edition is {ed.status}"
                + (f"; `mailer edition resume {period}` carries on." if ed.status == PAUSED else ".")
            )
        _staff().send(s, ed, _actor(), second_approver_required=rt.settings.require_second_approver)
        edition_id, already = ed.id, ed.status
    if already in (EDITION_SENDING, EDITION_SENT):
        click.echo(
            f"The {period} edition is already {already}: only readers "
            "not yet in its ledger are added; nobody gets it twice."
        )
    rt.queue.send(start_edition, edition_id)
    if wait:
        _wait_for(edition_id, timeout)
    elif rt.queue.embedded:
        click.echo("Sending in this process (no REDIS_URL)...")
        rt.queue.drain()
        _print_counts(edition_id)
    else:
        click.echo(f"Queued the {period} edition; `mailer edition status {period}` follows it.")


def _counts(edition_id: int) -> tuple[dict, str]:
    """Deliveries by status, and the edition's status, in one short transaction."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.delivery.fanout import counts

    with runtime.current().db.transaction() as s:
        return counts(s, edition_id), s.get(Edition, edition_id).status


def _print_counts(edition_id: int) -> dict:
    c, status = _counts(edition_id)
    click.echo(
        f"Edition {status}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
        if c
        else f"Edition {status}: no deliveries yet."
    )
    return c


def _wait_for(edition_id: int, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    with click.progressbar(length=1, label="Sending", show_pos=True, show_percent=True) as bar:
        while True:
            c, status = _counts(edition_id)
            total = sum(c.values())
            finished = total - c.get(PENDING, 0) - c.get(SENDING, 0)
            if total:
                bar.length = total
                bar.update(finished - bar.pos)
            if status not in UNFINISHED:  # sent, or paused / cancelled
                break
            if time.monotonic() > deadline:
                fail("Timed out waiting; the edition carries on in the background.")
            time.sleep(0.3 * runtime.current().settings.console_poll_scale)
    _print_counts(edition_id)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def format_progress(p) -> str:
    """The status block `mailer edition status` prints."""
    if p.refusing_since is not None:
        since = f"{p.refusing_since:%H:%M}"  # UTC, as the event lines below
        pace = f"relay refusing since {since}, {p.waiting_retry} waiting to retry"
    else:
        pace = f"{p.rate:.1f} msg/s over the last minute, ETA {_duration(p.eta_seconds)}"
    lines = [
        f"Edition {p.period}: {p.status}",
        f"  sent {p.sent}, failed {p.failed}, pending {p.pending} of {p.total}  ({pace})",
    ]
    if p.adding_readers:
        lines.append(f"  still adding readers: the ledger holds the first {p.total} so far")
    if p.refusing_since is not None and p.relay_answer:
        lines.append(f"  the relay's last answer: {strip_controls(p.relay_answer, keep='')}")
    if p.silent:
        lines.append(
            f"  {p.silent} held by a worker silent since {p.silent_since:%H:%M:%S} (stopped or dead); "
            f"a sweep takes them back from {p.taken_back_from:%H:%M:%S}"
        )
    other = {k: v for k, v in sorted(p.counts.items()) if k not in (SENT, PENDING, SENDING)}
    if other:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in other.items()))
    if p.counts.get(UNKNOWN):
        lines.append(
            "  unknown: a worker died while sending these; they were not resent "
            f"(`mailer edition resend-unknown {p.period}` sends them again)"
        )
    for at, kind, detail in p.events[-5:]:
        lines.append(f"  {at:%Y-%m-%d %H:%M:%S} {kind}: {detail}")
    return "\n".join(lines)


@edition.command("status")
@click.argument("period")
@click.option("--wait", is_flag=True, help="Show a live progress bar until the send ends.")
def edition_status(period: str, wait: bool) -> None:
    """Progress of PERIOD's send: sent, failed, pending, rate and ETA."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.delivery.control import ControlError, edition_progress

    db = runtime.current().db
    lease = runtime.current().settings.delivery.lease_seconds
    try:
        p = edition_progress(db, period, lease)
    except ControlError as err:
        fail(str(err))
    if wait and p.status in UNFINISHED:
        with click.progressbar(
            length=max(1, p.total), label="Sending", show_pos=True, item_show_func=lambda _: f"{p.rate:.0f} msg/s"
        ) as bar:
            while p.status in UNFINISHED:
                bar.length = max(1, p.total)
                bar.update(p.done - bar.pos)
                time.sleep(0.5)
                p = edition_progress(db, period, lease)
            bar.update(p.done - bar.pos)
    click.echo(format_progress(p))


# --- the editor's fields and the schedule ----------------------------------------------


@edition.command("edit")
@click.argument("period")
@click.option("--subject", help="Subject line (default: 'Your campaign digest - Month YYYY').")
@click.option("--preheader", help="The short line inboxes show after the subject.")
@click.option("--intro", help="The editor's note at the top ('-' reads it from standard input).")
@click.option("--featured", type=int, help="Id of an item of this edition to show first.")
@click.option("--no-featured", is_flag=True, help="Show no featured item.")
def edition_edit(period, subject, preheader, intro, featured, no_featured):
    """Set PERIOD's subject, preheader, intro note or featured item (draft or scheduled)."""
    changes = {}
    if subject is not None:
        changes["subject"] = subject
    if preheader is not None:
        changes["preheader"] = preheader
    if intro is not None:
        changes["intro"] = sys.stdin.read() if intro == "-" else intro
    if featured is not None and no_featured:
        fail("Give --featured ID or --no-featured, not both.")
    if featured is not None or no_featured:
        changes["featured_item_id"] = None if no_featured else featured
    if not changes:
        fail("Nothing to change: give --subject, --preheader, --intro, --featured or --no-featured.")
    with _step() as s:
        _staff().edit(s, lifecycle.get_edition(s, period), _actor(), **changes)
    click.echo(f"Updated the {period} edition: {', '.join(sorted(changes))}.")


@edition.command("show")
@click.argument("period")
def edition_show(period):
    """PERIOD's status, editor fields and sections."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.digest.compose import load_plan

    with _step() as s:
        ed = lifecycle.get_edition(s, period)
        plan = load_plan(s, ed)
        click.echo(
            f"Edition {ed.period}: {ed.status}"
            + (f" for {ed.scheduled_for:%Y-%m-%d %H:%M} UTC" if ed.scheduled_for else "")
        )
        click.echo(strip_controls(f"Subject:   {ed.subject}"))
        click.echo(strip_controls(f"Preheader: {ed.preheader or '(generated)'}"))
        click.echo(strip_controls(f"Intro:     {ed.intro or '(none)'}"))
        click.echo(f"Featured:  {ed.featured_item_id or '(none)'}")
        seen: set[int] = set()
        for section in plan.sections:
            click.echo(strip_controls(f"  {section.name}", keep=""))
            for item in section.items:
                mark = "+" if item.id in seen else " "
                seen.add(item.id)
                click.echo(strip_controls(f"   {mark}{item.id:5}  {item.dated}  {item.title[:70]}", keep=""))
        if len(seen) < len(plan.placements):
            click.echo(
                "  (+ also under an earlier topic: each reader gets it once, under the first of its topics they chose)"
            )


@edition.command("schedule")
@click.argument("period")
@click.option("--at", "at", required=True, help="'YYYY-MM-DD HH:MM' in SCHEDULE_TIMEZONE")
def edition_schedule(period, at):
    """Send PERIOD's edition at a set time (the scheduler process starts it)."""
    tz = ZoneInfo(runtime.current().settings.schedule_timezone)
    try:
        when = datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    except ValueError:
        fail(f"--at must look like 2026-12-01 09:00, not {at!r}.")
    with _step() as s:
        _staff().schedule(
            s,
            lifecycle.get_edition(s, period),
            when,
            _actor(),
            second_approver_required=runtime.current().settings.require_second_approver,
        )
    click.echo(f"The {period} edition will be sent at {when:%Y-%m-%d %H:%M %Z}.")


@edition.command("unschedule")
@click.argument("period")
def edition_unschedule(period):
    """Put a scheduled edition back to draft."""
    with _step() as s:
        _staff().unschedule(s, lifecycle.get_edition(s, period), _actor())
    click.echo(f"The {period} edition is a draft again.")


# --- sending control --------------------------------------------------------------------


def _enqueue_again(edition_id: int) -> None:
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.actors.digest import enqueue_pending

    runtime.current().queue.ensure_worker()
    enqueue_pending(edition_id)


@edition.command("pause")
@click.argument("period")
@click.option("--reason", default="")
def edition_pause(period: str, reason: str) -> None:
    """Stop sending PERIOD's edition (messages in flight finish); `resume` carries on."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.delivery.control import edition_by_period

    with _step() as s:
        _staff().pause(s, edition_by_period(s, period), _actor(), reason)
    click.echo(f"Paused the {period} edition.")


@edition.command("resume")
@click.argument("period")
def edition_resume(period: str) -> None:
    """Carry on sending a paused edition (also after the circuit breaker tripped)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.delivery.control import edition_by_period
    from mailer.delivery.sending import reset_breaker

    rt = runtime.current()
    with _step() as s:
        ed = edition_by_period(s, period)
        n = _staff().resume(s, ed, _actor())
        edition_id = ed.id
    # The operator says the relay is fixed: the failure streak starts afresh.
    reset_breaker(rt.settings.redis_url, edition_id)
    _enqueue_again(edition_id)
    click.echo(f"Resumed the {period} edition: {n} deliveries queued.")


@edition.command("cancel")
@click.argument("period")
@click.confirmation_option(prompt="Cancel this edition? Deliveries not yet sent never will be.")
def edition_cancel(period: str) -> None:
    """Cancel PERIOD's edition (draft, scheduled, sending or paused); unsent deliveries
    are never sent."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.delivery.control import edition_by_period

    with _step() as s:
        n = _staff().cancel(s, edition_by_period(s, period), _actor())
    click.echo(f"Cancelled the {period} edition: {n} deliveries will not be sent.")


@edition.command("resend-unknown")
@click.argument("period")
def edition_resend_unknown(period: str) -> None:
    """Send again the deliveries whose fate is unknown (their worker died mid-send).
    Some of these people may then get the edition twice."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.delivery.control import edition_by_period

    with _step() as s:
        ed = edition_by_period(s, period)
        n = _staff().resend_unknown(s, ed, _actor())
        edition_id = ed.id
    _enqueue_again(edition_id)
    click.echo(f"Queued {n} deliveries of unknown fate again.")


# --- previews and test sends ------------------------------------------------------------

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
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.digest import lifecycle, preview
    from mailer.digest.cache import prepared_editions
    from mailer.digest.compose import copy_for

    rt = runtime.current()
    with _step() as s:
        who = preview.profile(s, subscriber, topics, partners)
        prepared = prepared_editions.get(s, lifecycle.get_edition(s, period), rt.settings)
    copy = copy_for(prepared, who)
    if copy is None:
        fail("Those choices match no item in this edition: that subscriber would be skipped.")
    body = copy[1] if text else copy[0]
    if output:
        output.write_text(body, encoding="utf-8")
        click.echo(f"Wrote {output} ({len(body.encode('utf-8')):,} bytes).")
    else:
        click.echo(body)


@edition.command("preview-link")
@click.argument("period")
@click.option(
    "--revoke", is_flag=True, help="Make every preview link of PERIOD issued so far stop working (issues none)."
)
def edition_preview_link(period, revoke):
    """A link (valid 24 hours) to PERIOD's preview page: desktop and mobile, test-send."""
    rt = runtime.current()
    with _step() as s:
        ed = lifecycle.get_edition(s, period)
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
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.digest import lifecycle, preview
    from mailer.digest.cache import prepared_editions
    from mailer.mail.outgoing import Outgoing

    rt = runtime.current()
    with _step() as s:
        who = preview.profile(s, subscriber, topics, partners)
        prepared = prepared_editions.get(s, lifecycle.get_edition(s, period), rt.settings)
        envelope = preview.make_test_send(prepared, rt.settings, who, to_address)
    try:
        Outgoing(rt.settings, rt.transport).one_off(envelope)  # signed, with a return path
    except (PermanentFailure, TransientFailure) as err:
        fail(f"The test could not be sent: {err}")
    finally:
        rt.transport.close()
    as_whom = f"subscriber {who.email}" if subscriber else f"topics {list(topics)} and partners {list(partners)}"
    with _step() as s:
        _staff().test_sent(s, lifecycle.get_edition(s, period), _actor(), envelope.recipient, as_whom)
    click.echo(f"Sent a test of the {period} edition to {envelope.recipient}.")
