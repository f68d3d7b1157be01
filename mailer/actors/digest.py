"""The digest jobs: start an edition, send its batches, watch it, and the scheduler's jobs.

Thin shells that open a transaction, call the domain, and enqueue after the commit (see
:mod:`mailer.actors` for the rules every job keeps).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timezone

from sqlalchemy import select

from mailer import runtime, schedule_runs
from mailer.db import utcnow
from mailer.delivery import control, fanout
from mailer.delivery.sending import deliver_batch, finish_if_done
from mailer.delivery.transactional import editors_notice
from mailer.digest import lifecycle
from mailer.digest.compose import load_plan
from mailer.digest.editions import build_edition, edition_items, find_edition
from mailer.digest.models import DRAFT, SCHEDULED, SENDING, Edition
from mailer.mail.outgoing import Outgoing
from mailer.queue import job
from mailer.staff import approval

log = logging.getLogger(__name__)
DIGEST_PRIORITY = 10  # lower runs first; transactional keeps the default 0


@job(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY, time_limit=10 * 60_000)
def send_deliveries(delivery_ids: list[int]) -> None:
    """Send a batch of digest deliveries (ids of ``Delivery`` rows).

    Transient failures are retried by a new message, delayed by the deliveries' own
    backoff (recorded in the ledger as ``next_attempt_at``), not by Dramatiq's retries.
    """
    rt = runtime.current()
    result = deliver_batch(rt.db, rt.transport, rt.settings, delivery_ids)
    if result.retry and not result.paused:
        rt.queue.send(send_deliveries, result.retry, delay_ms=int(result.retry_delay * 1000) + 50)


def enqueue_batches(ids: list[int]) -> int:
    rt = runtime.current()
    for batch in fanout.batches(ids, rt.settings.delivery.batch_size):
        rt.queue.send(send_deliveries, batch)
    return len(ids)


def enqueue_again(ids: list[int], edition_id: int) -> None:
    """Enqueue deliveries of a sending edition again (after resume or resend-unknown) and
    keep its watchdog going."""
    enqueue_batches(ids)
    _watch_later(edition_id)


def _watch_later(edition_id: int, token: str | None = None) -> None:
    """Schedule the edition's watchdog. A new ``token`` starts a chain that only runs on if
    no other chain is alive, so repeated starts and sweeps never multiply watchdogs."""
    rt = runtime.current()
    if rt.queue.embedded:
        # One process: no worker can die alone and the queue dies with the process;
        # start-up (requeue_pending) is the recovery there.
        return
    delay = int(rt.settings.delivery.watch_seconds * 1000)
    rt.queue.send(watch_edition, edition_id, token or uuid.uuid4().hex, delay_ms=delay)


@job(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def start_edition(edition_id: int) -> None:
    """Fan an edition out into deliveries and enqueue the pending ones in batches."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        ids, done = _fan_out(s, s.get(Edition, edition_id))
    _enqueue_started(rt, edition_id, ids, done)


def _fan_out(s, edition: Edition) -> tuple[list[int], bool]:
    """Fan ``edition`` out (it becomes ``sending``); its due pending deliveries, and
    whether it is already done (nobody to send to)."""
    fanout.start_edition(s, edition, load_plan(s, edition))
    return control.pending_ids(s, edition.id, due_only=True), finish_if_done(s, edition.id)


def _enqueue_started(rt, edition_id: int, ids: list[int], done: bool) -> None:
    """After the fan-out's commit: enqueue the deliveries and watch the edition."""
    if ids and rt.db.engine.dialect.name == "postgresql":
        # Thousands of new rows: fresh statistics keep the planner on the primary key.
        with rt.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE deliveries")
    enqueue_batches(ids)
    if not done:
        _watch_later(edition_id)


@job(queue_name="digest", max_retries=20, priority=DIGEST_PRIORITY)
def watch_edition(edition_id: int, token: str = "") -> None:
    """The edition's watchdog, every ``SEND_WATCH_SECONDS`` while it is sending: marks
    deliveries of dead workers ``unknown``, enqueues again pending deliveries whose queue
    messages were lost (nothing moved for a whole lease), and closes the edition when done."""
    rt = runtime.current()
    cfg = rt.settings.delivery
    counters, key = rt.counters, f"mailer:watch:{edition_id}"
    if not counters.hold(key, token, cfg.watch_seconds * 3 + 5):
        return  # another watchdog chain is alive for this edition
    with rt.db.transaction() as s:
        edition = s.get(Edition, edition_id)
        if edition is None or edition.status != SENDING:
            counters.release(key, token)
            return  # paused (resume starts a new watch), cancelled or sent
        reaped = control.reap_stale(s, edition_id, cfg.lease_seconds)
        ids = (
            control.pending_ids(s, edition_id, due_only=True)
            if control.stalled(s, edition_id, cfg.lease_seconds)
            else []
        )
        done = finish_if_done(s, edition_id)
    if reaped:
        log.warning("edition %s: %d deliveries left sending by a dead worker marked unknown", edition_id, reaped)
    if ids:
        log.warning("edition %s stalled; enqueueing %d pending deliveries again", edition_id, len(ids))
        enqueue_batches(ids)
    if done:
        counters.release(key, token)
    else:
        _watch_later(edition_id, token)


@job(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def sweep() -> None:
    """Start a watchdog for every sending edition that has none (the scheduler sends this
    every few minutes, so a watchdog lost with a non-persistent Redis comes back)."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        editions = list(s.scalars(select_sending()))
    for eid in editions:
        _watch_later(eid)


@job(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def run_period(period: str, run_id: int | None = None) -> None:
    """The monthly job: build ``period``'s edition and start sending it, once.

    Only a draft nobody has touched in the console (or a month with no edition yet) is
    built and started. An edition that is already sending, paused or sent (an operator sent
    it by hand, or this job ran before), scheduled by an editor, being prepared by one in
    the console, or cancelled is left alone, so a second firing or a retry sends
    nothing. A month with no items sends nothing and tells the editors (by email to
    ``REPLY_TO`` if set; in the log and the run's outcome always). The outcome goes on the
    scheduler's run ``run_id`` (see :mod:`mailer.schedule_runs`).
    """
    rt = runtime.current()
    empty_notice, started = False, None
    with rt.db.transaction() as s:
        edition = find_edition(s, period, lock=True)
        if edition is not None and (edition.status != DRAFT or edition.changed_by_id is not None):
            # A draft someone built or edited in the console is theirs to schedule or send,
            # once a second person has approved it (mailer.staff.approval): the job
            # neither rebuilds it nor sends it unapproved.
            detail = (
                f"the {period} edition is {edition.status}"
                + (" (an editor scheduled it)" if edition.status == SCHEDULED else "")
                + (" (an editor is preparing it in the console)" if edition.status == DRAFT else "")
                + "; nothing sent"
            )
            log.info("monthly job: %s", detail)
            schedule_runs.finish(s, run_id, schedule_runs.SKIPPED, detail)
            return
        edition = build_edition(s, period)
        edition_id = edition.id
        if not edition_items(s, edition_id):
            run = s.get(schedule_runs.ScheduleRun, run_id) if run_id is not None else None
            empty_notice = run is None or run.outcome != schedule_runs.EMPTY  # once per run
            detail = f"the {period} edition has no approved items; nothing sent"
            log.warning("monthly job: %s. Approve items, then `mailer edition send %s`.", detail, period)
            schedule_runs.finish(s, run_id, schedule_runs.EMPTY, detail)
        else:
            # Fanned out under the row lock: the edition leaves draft in this transaction,
            # so a later firing or retry finds it sending and leaves it; a hand send only
            # adds readers the ledger does not have yet.
            started = _fan_out(s, edition)
            schedule_runs.finish(s, run_id, schedule_runs.SENDING, f"the {period} edition is sending")
    if empty_notice:
        tell_editors_empty(rt, period)
    if started is not None:
        _enqueue_started(rt, edition_id, *started)


def tell_editors_empty(rt, period: str) -> None:
    """Email the editors (``REPLY_TO``) that the month's edition went out empty-handed."""
    if not rt.settings.reply_to:
        return
    envelope = editors_notice(
        rt.settings,
        f"The {period} edition was not sent: it has no items",
        f"The monthly job found no approved items for the {period} edition, "
        f"so nothing was sent. Approve items, then run: mailer edition send {period}",
    )
    outgoing = Outgoing(rt.settings, rt.transport)
    try:
        outgoing.one_off(envelope)
    finally:
        outgoing.close()


@job(queue_name="digest", max_retries=3)
def send_due_editions() -> None:
    """Start every scheduled edition whose time has come (the scheduler runs this each minute),
    unless a change since its approval waits for a second person's approval."""
    rt = runtime.current()
    required = rt.settings.require_second_approver
    with rt.db.transaction() as s:
        due = lifecycle.due(s)
        ids = [e.id for e in due if not approval.needs_approval(e, second_approver_required=required)]
        for e in due:
            if e.id not in ids:  # changed (by a command) since its approval
                log.warning("the %s edition is due but its last change is not approved; not sending it", e.period)
    for edition_id in ids:
        rt.queue.send(start_edition, edition_id)


def requeue_pending() -> int:
    """Enqueue again the pending deliveries of every edition that is sending, and watch them.
    Deliveries waiting out a retry backoff are enqueued for when their wait ends."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        editions = list(s.scalars(select_sending()))
        due = [i for eid in editions for i in control.pending_ids(s, eid, due_only=True)]
        waiting = [(i, at) for eid in editions for i, at in control.waiting(s, eid)]
    if due or waiting:
        log.info("re-enqueueing %d pending deliveries (%d waiting to retry)", len(due) + len(waiting), len(waiting))
    for eid in editions:
        _watch_later(eid)
    if waiting:
        latest = max(at for _, at in waiting)
        if latest.tzinfo is None:
            latest = latest.replace(tzinfo=timezone.utc)
        delay_ms = max(0, int((latest - utcnow()).total_seconds() * 1000)) + 50
        for batch in fanout.batches([i for i, _ in waiting], rt.settings.delivery.batch_size):
            rt.queue.send(send_deliveries, batch, delay_ms=delay_ms)
    return enqueue_batches(due) + len(waiting)


def select_sending():
    return select(Edition.id).where(Edition.status == SENDING)
