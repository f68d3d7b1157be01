"""The digest jobs: start an edition, send its batches, watch it, and the scheduler's jobs.

Thin shells that open a transaction, call the domain, and enqueue after the commit (see
:mod:`mailer.actors` for the rules every job keeps).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from sqlalchemy import select

from mailer import runtime, schedule_runs
from mailer.actors.groups import recover_groups
from mailer.db import aware, utcnow
from mailer.delivery import control, fanout
from mailer.delivery.sending import beat, deliver_batch, finish_if_done
from mailer.delivery.transactional import editors_notice
from mailer.digest import lifecycle
from mailer.digest.compose import load_plan
from mailer.digest.editions import EditionError, build_edition, edition_items, find_edition
from mailer.digest.models import DRAFT, SCHEDULED, SENDING, Edition
from mailer.digest.plan import DigestPlan
from mailer.groups import network
from mailer.groups import sending as group_sending
from mailer.mail.outgoing import Outgoing
from mailer.queue import job
from mailer.staff import approval

log = logging.getLogger(__name__)
DIGEST_PRIORITY = 10  # lower runs first; transactional keeps the default 0


# A batch that fails outright lost the database (or Redis) on the way: the relay's own
# failures are the ledger's business (below). Dramatiq retries it within seconds, doubling
# up to 30 s, for about two minutes (its default would first wait 15-30 s); an outage that
# lasts longer is the keeper's sweep's to recover, from the ledger, once it is over.
@job(
    queue_name="digest",
    max_retries=8,
    min_backoff=1_000,
    max_backoff=30_000,
    priority=DIGEST_PRIORITY,
    time_limit=10 * 60_000,
)
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


@job(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def start_edition(edition_id: int) -> None:
    """Fan an edition out into deliveries and enqueue the pending ones in batches.

    Under the edition's row lock (``SELECT ... FOR UPDATE``): a second fan-out of the same
    edition (two ``edition send`` at once, a redelivered message) waits for the first to
    commit, then finds the edition already sending and its readers in the ledger, and says
    so in one line (rather than racing the first one's rows into a unique-key error)."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        edition = s.get(Edition, edition_id, with_for_update=True)
        if edition is None:
            log.warning("edition %s does not exist (deleted since the send?); nothing sent", edition_id)
            return
        was = edition.status
        try:
            # A new send adds its first readers here and the rest after the commit, while
            # their copies go (_enqueue_started); a send already going (or one whose fan-out
            # stopped half-way) makes its ledger whole here.
            made, plan = _fan_out(s, edition, fanout.FANOUT_FIRST if was in (DRAFT, SCHEDULED) else None)
        except EditionError as err:  # cancelled or paused since, no items: retrying cannot help
            log.warning("edition %s not started: %s", edition_id, err)
            return
        done = finish_if_done(s, edition_id)
        again = was == SENDING and not made.created
        period = edition.period
    if again:
        # Its pending deliveries go to the queue again (one may have been lost): claims
        # decide who sends, so an extra queue message sends nothing twice.
        n = enqueue_pending(edition_id)
        log.info("the %s edition is already sending; nobody new to add, %d pending enqueued again", period, n)
        return
    _enqueue_started(rt, edition_id, done, plan)


def _fan_out(s, edition: Edition, first: int | None = fanout.FANOUT_FIRST) -> tuple[fanout.FanOut, DigestPlan]:
    """Start ``edition``'s fan-out with its first ``first`` readers (None: all of them; it
    becomes ``sending``; see :func:`_enqueue_started` for the rest); what was added, and
    the plan. The caller holds the edition's row lock."""
    plan = load_plan(s, edition)
    return fanout.start_edition(s, edition, plan, first=first), plan


def _enqueue_started(rt, edition_id: int, done: bool, plan: DigestPlan) -> None:
    """After the fan-out's first commit: enqueue its deliveries (streamed from the
    ledger, a batch at a time), then add the rest of the readers a range a transaction,
    each range's deliveries enqueued once it is committed: the first copies leave while
    the ledger is made (at 100,000 readers, after 1.6 s rather than 4.8). The workers'
    sweep (:func:`keep`) watches the edition, and starts a fan-out that stopped again."""
    if done:
        return
    _, last = _enqueue(rt, edition_id)
    _analyze(rt, "subscribers, subscriber_topics, subscriber_partners")
    more = True  # until extend finds the ledger whole (at once, if the first range was all)
    while more:
        with rt.db.transaction() as s:
            more = fanout.extend(s, edition_id, plan)
        if more:
            _, last = _enqueue(rt, edition_id, after=last)
    _analyze(rt, "deliveries")
    with rt.db.transaction() as s:
        finish_if_done(s, edition_id)


def _analyze(rt, tables: str) -> None:
    """Fresh statistics for the send's queries, on PostgreSQL. Thousands of new ledger rows:
    they keep the planner on the primary key. The readers' tables: right after a bulk
    import, until autovacuum has analysed them (up to a minute), the batches' reader
    lookups ran 3-4 times slower (bench.recovery's send, 16 s against 4.3 s). About 0.2 s
    at 100,000 readers."""
    if rt.db.engine.dialect.name == "postgresql":
        with rt.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"ANALYZE {tables}")


def _enqueue(rt, edition_id: int, after: int = 0) -> tuple[int, int]:
    """Enqueue the edition's due pending deliveries whose id is above ``after``, in
    batches read from the ledger as a stream (memory holds one batch whatever the
    audience); how many, and the highest id enqueued (``after`` if none)."""
    n = 0
    with rt.db.transaction() as s:
        for batch in fanout.pending_batches(s, edition_id, rt.settings.delivery.batch_size, due_only=True, after=after):
            rt.queue.send(send_deliveries, batch)
            n, after = n + len(batch), batch[-1]
    return n, after


def enqueue_pending(edition_id: int) -> int:
    """Enqueue the edition's due pending deliveries in batches; returns how many."""
    return _enqueue(runtime.current(), edition_id)[0]


@job(queue_name="digest", max_retries=20, priority=DIGEST_PRIORITY)
def watch_edition(edition_id: int, token: str = "") -> None:
    """One sweep (:func:`recover`), for watchdog messages queued by earlier versions: every
    worker's keeper now sweeps, so no chain of watchdogs is kept in the queue."""
    recover({}, token or uuid.uuid4().hex)


@job(queue_name="digest", max_retries=3, priority=DIGEST_PRIORITY)
def sweep() -> None:
    """One sweep of every sending edition (:func:`recover`; the scheduler sends this every
    few minutes, besides the sweeps each worker's keeper makes). In embedded mode too: the
    worker threads there have a keeper of their own (see :mod:`mailer.queue`), so a live
    process's claims keep their heartbeat and a dead process's are taken back. The group
    delivery ledger's claims too (:func:`mailer.actors.groups.recover_groups`)."""
    token = uuid.uuid4().hex
    recover({}, token)
    recover_groups({}, token)


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
        network.freeze(s, edition, rt.settings)
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
            _, plan = _fan_out(s, edition)
            started = finish_if_done(s, edition.id)
            schedule_runs.finish(s, run_id, schedule_runs.SENDING, f"the {period} edition is sending")
    if empty_notice:
        tell_editors_empty(rt, period)
    if started is not None:
        _enqueue_started(rt, edition_id, started, plan)


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
        waiting = [(i, at) for eid in editions for i, at in control.waiting(s, eid)]
    due = sum(enqueue_pending(eid) for eid in editions)
    if due or waiting:
        log.info("re-enqueued %d pending deliveries (%d waiting to retry)", due + len(waiting), len(waiting))
    if waiting:
        latest = aware(max(at for _, at in waiting))
        delay_ms = max(0, int((latest - utcnow()).total_seconds() * 1000)) + 50
        for batch in fanout.batches([i for i, _ in waiting], rt.settings.delivery.batch_size):
            rt.queue.send(send_deliveries, batch, delay_ms=delay_ms)
    return due + len(waiting)


def keep(stop: threading.Event) -> None:
    """A worker process's keeper (a thread of its own, started by :mod:`mailer.worker`, and
    beside embedded worker threads by :meth:`mailer.queue.Queue.ensure_worker`):
    every heartbeat it refreshes this process's claims (editions' and groups') and writes
    outcomes kept while the database was away; every ``SEND_WATCH_SECONDS`` it sweeps
    both ledgers (:func:`recover`, :func:`mailer.actors.groups.recover_groups`). Every
    worker runs one, so recovery needs neither a scheduler nor anything kept in Redis. The
    runtime is read afresh at each beat (an embedded process may be booted again)."""
    quiet: dict[int, float] = {}
    group_quiet: dict = {}
    token = uuid.uuid4().hex
    next_sweep = time.monotonic() + runtime.current().settings.delivery.watch_seconds
    while True:
        rt = runtime.current()
        cfg = rt.settings.delivery
        next_sweep = min(next_sweep, time.monotonic() + cfg.watch_seconds)
        if stop.wait(min(cfg.heartbeat_seconds, cfg.watch_seconds)):
            return
        try:
            beat(rt.db)
            group_sending.beat(rt.db)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + cfg.watch_seconds
                recover(quiet, token)
                recover_groups(group_quiet, token)
        except Exception:  # the database or Redis is away: try again next beat
            log.warning("delivery keeper: sweep failed; trying again", exc_info=True)


def recover(quiet: dict[int, float], token: str, clock=time.monotonic) -> None:
    """One sweep of every sending edition, from the ledger alone: dead workers' claims
    are taken back (:func:`control.reap_stale`) and what they held is enqueued again; an
    edition with deliveries due but no live claim for a whole lease (its queue messages
    were lost: a Redis restart, a killed worker's prefetched batches) is enqueued again,
    at once if the broker holds no batch or fan-out message at all (Redis came back
    empty); a finished one is closed. ``quiet`` (edition -> since when, by ``clock``) is
    the caller's memory between sweeps. Extra queue messages are harmless: claims decide."""
    rt = runtime.current()
    lease = rt.settings.delivery.lease_seconds
    seen = []
    with rt.db.transaction() as s:
        stalled = fanout.stalled_fanouts(s, lease)
        for eid in s.scalars(select_sending()).all():
            reaped = control.reap_stale(s, eid, lease)
            seen.append((eid, reaped, control.live(s, eid, lease), control.due_pending(s, eid)))
            finish_if_done(s, eid)
    for eid in stalled:  # its job is run again: it makes the ledger whole, then enqueues
        if rt.counters.hold(f"mailer:refanout:{eid}", token, lease):
            log.warning("edition %s: its fan-out stopped half-way; starting it again", eid)
            rt.queue.send(start_edition, eid)
    now = clock()
    emptied = None  # the broker holds no batch or fan-out: asked once, and only when needed
    for eid, reaped, alive, due in seen:
        if reaped:
            log.warning("edition %s: took back %d deliveries from a dead worker's claims", eid, reaped)
        if reaped and due:  # what the dead held goes now, whoever else is still sending
            enqueue_pending(eid)
            quiet.pop(eid, None)
            continue
        if not due or alive:
            quiet.pop(eid, None)
            continue
        since = quiet.setdefault(eid, now)
        if emptied is None:
            # Every batch, fan-out and retry is a queue message from its enqueue to its ack:
            # due deliveries, no live claim and none of those means the queue was lost.
            emptied = bool(rt.queue.holds_none_of("digest", (send_deliveries, start_edition, run_period)))
        if (emptied or now - since >= lease) and rt.counters.hold(f"mailer:redrive:{eid}", token, lease):
            n = enqueue_pending(eid)
            quiet[eid] = now
            if emptied:
                log.warning("edition %s: its queue messages are gone; enqueued %d due deliveries again", eid, n)
            else:
                log.warning("edition %s: nothing in flight for %.0fs; enqueued %d due deliveries again", eid, lease, n)
    for eid in set(quiet) - {eid for eid, *_ in seen}:
        quiet.pop(eid)


def select_sending():
    return select(Edition.id).where(Edition.status == SENDING)
