"""Operator commands for sending: status, pause, resume, cancel, resend-unknown, bounces.

Shells over :mod:`mailer.delivery.control` and :mod:`mailer.delivery.bounces`; each opens
a transaction, calls the domain, enqueues after the commit, and prints the outcome.
"""
from __future__ import annotations

import sys
import time

import click

from mailer import runtime


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def format_progress(p) -> str:
    """The status block `mailer edition status` prints."""
    lines = [f"Edition {p.period}: {p.status}",
             f"  sent {p.sent}, failed {p.failed}, pending {p.pending} of {p.total}"
             f"  ({p.rate:.1f} msg/s over the last minute, ETA {_duration(p.eta_seconds)})"]
    other = {k: v for k, v in sorted(p.counts.items()) if k not in ("sent", "pending", "sending")}
    if other:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in other.items()))
    if p.counts.get("unknown"):
        lines.append("  unknown: a worker died while sending these; they were not resent "
                     f"(`mailer edition resend-unknown {p.period}` sends them again)")
    for at, kind, detail in p.events[-5:]:
        lines.append(f"  {at:%Y-%m-%d %H:%M:%S} {kind}: {detail}")
    return "\n".join(lines)


def _enqueue_ids(ids: list[int], edition_id: int | None = None) -> None:
    from mailer.broker import ensure_embedded_worker
    from mailer.delivery.actors import _watch_later, enqueue_batches

    ensure_embedded_worker()
    enqueue_batches(ids)
    if edition_id is not None:
        _watch_later(edition_id)


def register(main: click.Group, edition: click.Group) -> None:
    """Add the delivery commands to the ``mailer`` group and its ``edition`` subgroup."""

    @edition.command("status")
    @click.argument("period")
    @click.option("--wait", is_flag=True, help="Show a live progress bar until the send ends.")
    def edition_status(period: str, wait: bool) -> None:
        """Progress of PERIOD's send: sent, failed, pending, rate and ETA."""
        from mailer.delivery.control import ControlError, edition_progress

        db = runtime.current().db
        try:
            p = edition_progress(db, period)
        except ControlError as err:
            _fail(str(err))
        if wait and p.status in ("draft", "sending"):
            with click.progressbar(length=max(1, p.total), label="Sending", show_pos=True,
                                   item_show_func=lambda _: f"{p.rate:.0f} msg/s") as bar:
                while p.status in ("draft", "sending"):
                    bar.length = max(1, p.total)
                    bar.update(p.done - bar.pos)
                    time.sleep(0.5)
                    p = edition_progress(db, period)
                bar.update(p.done - bar.pos)
        click.echo(format_progress(p))

    @edition.command("pause")
    @click.argument("period")
    @click.option("--reason", default="")
    def edition_pause(period: str, reason: str) -> None:
        """Stop sending PERIOD's edition (messages in flight finish); `resume` carries on."""
        from mailer.delivery.control import ControlError, edition_by_period, pause

        with runtime.current().db.transaction() as s:
            try:
                pause(s, edition_by_period(s, period), "cli", reason)
            except ControlError as err:
                _fail(str(err))
        click.echo(f"Paused the {period} edition.")

    @edition.command("resume")
    @click.argument("period")
    def edition_resume(period: str) -> None:
        """Carry on sending a paused edition (also after the circuit breaker tripped)."""
        from mailer.delivery.control import ControlError, edition_by_period, resume

        with runtime.current().db.transaction() as s:
            try:
                ed = edition_by_period(s, period)
                ids = resume(s, ed, "cli")
            except ControlError as err:
                _fail(str(err))
            edition_id = ed.id
        from mailer.delivery.limits import counters_for
        from mailer.delivery.sending import breaker_key

        # The operator says the relay is fixed: the failure streak starts afresh.
        counters_for(runtime.current().settings.redis_url).reset(breaker_key(edition_id))
        _enqueue_ids(ids, edition_id)
        click.echo(f"Resumed the {period} edition: {len(ids)} deliveries queued.")

    @edition.command("cancel")
    @click.argument("period")
    @click.confirmation_option(prompt="Cancel this edition? Deliveries not yet sent never will be.")
    def edition_cancel(period: str) -> None:
        """Cancel PERIOD's edition (draft, scheduled, sending or paused); unsent deliveries
        are never sent."""
        from mailer.delivery.control import ControlError, cancel, edition_by_period

        with runtime.current().db.transaction() as s:
            try:
                n = cancel(s, edition_by_period(s, period), "cli")
            except ControlError as err:
                _fail(str(err))
        click.echo(f"Cancelled the {period} edition: {n} deliveries will not be sent.")

    @edition.command("resend-unknown")
    @click.argument("period")
    def edition_resend_unknown(period: str) -> None:
        """Send again the deliveries whose fate is unknown (their worker died mid-send).
        Some of these people may then get the edition twice."""
        from mailer.delivery.control import ControlError, edition_by_period, resend_unknown

        with runtime.current().db.transaction() as s:
            try:
                ed = edition_by_period(s, period)
                ids = resend_unknown(s, ed, "cli")
            except ControlError as err:
                _fail(str(err))
            edition_id = ed.id
        _enqueue_ids(ids, edition_id)
        click.echo(f"Queued {len(ids)} deliveries of unknown fate again.")

    @main.group()
    def bounces() -> None:
        """Bounce and complaint reports."""

    @bounces.command("process")
    @click.argument("source", required=False, default="-")
    def bounces_process(source: str) -> None:
        """Read DSN bounces and ARF complaints from SOURCE (a maildir, an mbox file, or
        `-` for stdin) and apply them: hard bounces and complaints suppress the address."""
        from mailer.delivery import bounces as b
        from mailer.delivery.verp import ReturnPaths

        rt = runtime.current()
        paths = ReturnPaths(rt.settings.secret_key, rt.settings.delivery, rt.settings.sender_domain)
        try:
            reports = [r for msg in b.read_messages(source) for r in b.parse(msg, paths)]
        except (ValueError, OSError) as err:
            _fail(str(err))
        with rt.db.transaction() as s:
            tally = b.apply(s, reports)
        click.echo(f"hard bounces {tally.hard}, soft bounces {tally.soft}, complaints "
                   f"{tally.complaints}, unmatched {tally.unmatched}; suppressed "
                   f"{len(tally.suppressed)} address(es)")
