"""The ``mailer`` command: Flask's CLI group over the app factory, plus operator commands.

Each command is a shell: it opens a transaction, calls the domain, prints the outcome.
"""
from __future__ import annotations

import sys
import time
from datetime import date

import click
from flask.cli import FlaskGroup
from sqlalchemy import select

from mailer import runtime
from mailer.app import create_app


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False)
def main() -> None:
    """Campaign digest service: web app, workers, editions and demo data."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from mailer.schema import upgrade

    url = runtime.current().settings.database_url
    upgrade(url, revision)
    click.echo(f"Database is at revision {revision}.")


@main.command("seed-demo")
def seed_demo_cmd() -> None:
    """Load demo topics, partners, approved items and confirmed subscribers (once)."""
    from mailer.demo import seed_demo

    rt = runtime.current()
    with rt.db.transaction() as s:
        secrets = seed_demo(s, date.today())
    if secrets is None:
        click.echo("Demo data is already loaded (run `mailer partners link SLUG` for a submission link).")
        return
    click.echo("Demo data loaded. Partner submission links (shown once):")
    for slug, secret in secrets.items():
        click.echo(f"  {slug:26} {rt.settings.base_url}/submit/{secret}")


@main.group()
def partners() -> None:
    """Partner organisations."""


@partners.command("link")
@click.argument("slug")
def partners_link(slug: str) -> None:
    """Issue a new submission link for SLUG (the old one stops working)."""
    from mailer.content.models import Partner
    from mailer.content.partners import rotate_submit_secret

    rt = runtime.current()
    with rt.db.transaction() as s:
        partner = s.scalar(select(Partner).where(Partner.slug == slug))
        if partner is None:
            _fail(f"No partner with slug {slug!r}.")
        secret = rotate_submit_secret(partner)
    click.echo(f"{rt.settings.base_url}/submit/{secret}")


@main.group()
def items() -> None:
    """Partner items and moderation."""


@items.command("list")
@click.option("--status", default=None, help="submitted, approved, rejected or withdrawn")
def items_list(status: str | None) -> None:
    from mailer.content.models import Item

    with runtime.current().db.transaction() as s:
        q = select(Item).order_by(Item.id)
        if status:
            q = q.where(Item.status == status)
        for item in s.scalars(q):
            click.echo(f"{item.id:5}  {item.status:9}  {item.dated}  {item.partner.name[:24]:24}  {item.title[:60]}")


@items.command("approve")
@click.argument("item_ids", nargs=-1, type=int, required=True)
@click.option("--editor", default="cli", show_default=True)
def items_approve(item_ids: tuple[int, ...], editor: str) -> None:
    """Approve submitted items so the next edition can carry them; tells each partner."""
    from mailer.cli_partners import notify_decisions
    from mailer.content.moderation import ModerationError, approve

    with runtime.current().db.transaction() as s:
        try:
            for item_id in item_ids:
                approve(s, item_id, editor)
        except ModerationError as err:
            _fail(str(err))
    notify_decisions(item_ids)
    click.echo(f"Approved {', '.join(map(str, item_ids))}.")


@items.command("reject")
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Told to the partner.")
@click.option("--editor", default="cli", show_default=True)
def items_reject(item_id: int, reason: str, editor: str) -> None:
    """Reject a submitted item; the partner's contact gets the reason."""
    from mailer.cli_partners import notify_decisions
    from mailer.content.moderation import ModerationError, reject

    with runtime.current().db.transaction() as s:
        try:
            reject(s, item_id, editor, reason)
        except ModerationError as err:
            _fail(str(err))
    notify_decisions([item_id])
    click.echo(f"Rejected {item_id}.")


@main.group()
def edition() -> None:
    """Monthly editions: build, send, follow."""


@edition.command("build")
@click.option("--period", required=True, help="YYYY-MM")
def edition_build(period: str) -> None:
    """Create or rebuild PERIOD's draft edition from approved items.

    Renders it once, so a copy that could pass Gmail's clipping size is reported now."""
    from mailer.digest.clip import GMAIL_CLIP_BYTES, SECTION_CAP, largest_copy_bytes
    from mailer.digest.compose import prepare_edition
    from mailer.digest.editions import EditionError, build_edition

    with runtime.current().db.transaction() as s:
        try:
            ed = build_edition(s, period)
        except EditionError as err:
            _fail(str(err))
        prepared = prepare_edition(s, ed, runtime.current().settings)
        plan = prepared.plan
        click.echo(f"Edition {period} ({ed.status}): {len(plan.items)} items in "
                   f"{len(plan.sections)} sections. Subject: {ed.subject}")
        for section in plan.sections:
            click.echo(f"  {section.name}: {len(section.items)}")
        largest = largest_copy_bytes(plan, prepared.rendered)
        if largest >= GMAIL_CLIP_BYTES:
            click.echo(f"Warning: a reader's copy could reach {largest // 1024} KB of HTML, and Gmail "
                       f"clips above {GMAIL_CLIP_BYTES // 1024} KB, hiding the footer with the "
                       f"unsubscribe link. Sections already show at most {SECTION_CAP} items each; "
                       f"shorten summaries or hold some items for next month.", err=True)


@edition.command("send")
@click.argument("period")
@click.option("--wait/--no-wait", default=False, help="Show progress until every delivery is done.")
@click.option("--timeout", default=3600, show_default=True, help="Seconds to wait at most.")
def edition_send(period: str, wait: bool, timeout: int) -> None:
    """Send PERIOD's edition through the queue. Sending again sends nothing new."""
    from mailer.broker import drain, embedded
    from mailer.delivery.actors import start_edition
    from mailer.digest.models import Edition
    from mailer.queue import enqueue

    rt = runtime.current()
    with rt.db.transaction() as s:
        ed = s.scalar(select(Edition).where(Edition.period == period))
        if ed is None:
            _fail(f"There is no {period} edition. Build it first: mailer edition build --period {period}")
        if ed.status in ("paused", "cancelled"):
            _fail(f"The {period} edition is {ed.status}"
                  + (f"; `mailer edition resume {period}` carries on." if ed.status == "paused" else "."))
        edition_id = ed.id
    enqueue(start_edition, edition_id)
    if wait:
        _wait_for(edition_id, timeout)
    elif embedded():
        click.echo("Sending in this process (no REDIS_URL)...")
        drain()
        _print_counts(edition_id)
    else:
        click.echo(f"Queued the {period} edition; `mailer edition status {period}` follows it.")


def _print_counts(edition_id: int) -> dict:
    from mailer.delivery.fanout import counts
    from mailer.digest.models import Edition

    with runtime.current().db.transaction() as s:
        c = counts(s, edition_id)
        status = s.get(Edition, edition_id).status
    click.echo(f"Edition {status}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) if c
               else f"Edition {status}: no deliveries yet.")
    return c


def _wait_for(edition_id: int, timeout: int) -> None:
    from mailer.delivery.fanout import counts
    from mailer.digest.models import Edition

    rt = runtime.current()
    deadline = time.monotonic() + timeout
    with click.progressbar(length=1, label="Sending", show_pos=True, show_percent=True) as bar:
        while True:
            with rt.db.transaction() as s:
                c = counts(s, edition_id)
                status = s.get(Edition, edition_id).status
            total = sum(c.values())
            finished = total - c.get("pending", 0) - c.get("sending", 0)
            if total:
                bar.length = total
                bar.update(finished - bar.pos)
            if status not in ("draft", "sending"):  # sent, or paused / cancelled
                break
            if time.monotonic() > deadline:
                _fail("Timed out waiting; the edition carries on in the background.")
            time.sleep(0.3)
    _print_counts(edition_id)


from subscribers.cli import subscribers as _subscribers_group  # noqa: E402

main.add_command(_subscribers_group)


@main.command("worker")
@click.option("--processes", default=2, show_default=True)
@click.option("--threads", default=4, show_default=True)
def worker(processes: int, threads: int) -> None:
    """Run queue workers: `dramatiq` processes with REDIS_URL, else threads in this process."""
    from mailer.broker import embedded, ensure_embedded_worker

    if not embedded():
        from dramatiq.cli import main as dramatiq_main

        sys.argv = ["dramatiq", "mailer.worker", "--processes", str(processes), "--threads", str(threads)]
        sys.exit(dramatiq_main())
    ensure_embedded_worker(threads)
    click.echo("Embedded worker running (no REDIS_URL); Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


from mailer import edition_cli  # noqa: E402,F401  (registers the editor commands on `edition`)
from mailer import cli_partners  # noqa: E402,F401  (partner, item and feed commands)
from mailer.delivery.commands import register as _register_delivery  # noqa: E402

_register_delivery(main, edition)
