"""The group jobs: membership emails, delivering an accepted post, the daily digests,
decisions' notices, expiring held posts. Thin shells over :mod:`mailer.groups` (see :mod:`mailer.actors`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import exists, select

from mailer import runtime
from mailer.db import utcnow
from mailer.groups import daily, notices, posting, sending, service
from mailer.groups.dmarc import DmarcPolicies
from mailer.groups.models import APPROVED, HELD, GroupDelivery, GroupDigest, GroupMember, GroupPost
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import PermanentFailure
from mailer.queue import job

log = logging.getLogger(__name__)
GROUP_PRIORITY = 5  # after confirmations (0), before digest batches (10)

# Tests set this to a stub (name -> TXT strings) so no DNS query leaves the machine.
resolver: Callable[[str], list[str]] | None = None
_policies: tuple = (None, None, None)  # (settings, resolver, DmarcPolicies)
_lock = threading.Lock()


def dmarc_policies() -> DmarcPolicies:
    """The DMARC decisions of this process (one cache), for its settings and resolver."""
    global _policies
    settings = runtime.current().settings
    with _lock:
        if _policies[0] is not settings or _policies[1] is not resolver:
            cfg = settings.groups
            _policies = (
                settings,
                resolver,
                DmarcPolicies(cfg.dmarc_rewrite_domains, resolver, timeout=cfg.dmarc_timeout),
            )
        return _policies[2]


@job(queue_name="transactional", max_retries=8, min_backoff=2_000, max_backoff=600_000, throws=(PermanentFailure,))
def send_group_email(kind: str, member_id: int) -> None:
    """A join confirmation (``join``) or "already a member" note (``already``)."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        member = s.get(GroupMember, member_id)
        if member is None:
            return
        envelope = notices.membership_email(kind, rt.settings, member.group, member)
    outgoing = Outgoing(rt.settings, rt.transport)
    try:
        outgoing.one_off(envelope)
    finally:
        outgoing.close()


@job(queue_name="transactional", max_retries=8, min_backoff=2_000, max_backoff=600_000, throws=(PermanentFailure,))
def send_post_decision(kind: str, post_id: int) -> None:
    """Tell a held post's sender it was rejected (with the reason) or expired."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        post = s.get(GroupPost, post_id)
        if post is None or not post.author_email:
            return
        envelope = notices.decision_email(kind, rt.settings, post)
    outgoing = Outgoing(rt.settings, rt.transport)
    try:
        outgoing.one_off(envelope)
    finally:
        outgoing.close()


@job(queue_name="digest", max_retries=5, priority=GROUP_PRIORITY)
def start_group_post(post_id: int) -> None:
    """Fan an approved post out to its group's members and enqueue the batches."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        ids = sending.fan_out(s, post_id)
    for batch in sending.batches(ids, rt.settings.delivery.batch_size):
        rt.queue.send(send_group_deliveries, batch)


@job(queue_name="digest", max_retries=3, priority=GROUP_PRIORITY, time_limit=10 * 60_000)
def send_group_deliveries(delivery_ids: list[int]) -> None:
    """Send a batch of group deliveries; transient failures come back after their backoff."""
    rt = runtime.current()
    result = sending.deliver(rt.db, rt.transport, rt.settings, dmarc_policies(), delivery_ids)
    if result.retry:
        rt.queue.send(send_group_deliveries, result.retry, delay_ms=int(result.retry_delay * 1000) + 50)


@job(queue_name="digest", max_retries=5, priority=GROUP_PRIORITY)
def send_daily_digests(day: str) -> None:
    """The daily digests of ``day`` (``YYYY-MM-DD``, in ``SCHEDULE_TIMEZONE``): each group
    with posts approved that day gets its digest row once and one delivery per digest
    member (the ledger's unique rows: running this again, after a crash or a second
    firing, sends nobody a second copy and picks up what was left pending)."""
    rt = runtime.current()
    the_day = date.fromisoformat(day)
    start, end = daily.day_window(the_day, rt.settings.schedule_timezone)
    with rt.db.transaction() as s:
        for group_id in daily.groups_with_posts(s, start, end):
            daily.open_digest(s, group_id, the_day)
        ids = [i for digest_id in daily.digests_of_day(s, the_day) for i in sending.fan_out_digest(s, digest_id)]
    for batch in sending.batches(ids, rt.settings.delivery.batch_size):
        rt.queue.send(send_group_deliveries, batch)
    log.info("daily group digests for %s: %d deliveries enqueued", day, len(ids))


@job(queue_name="transactional", max_retries=3)
def expire_held_posts() -> None:
    """End held posts nobody decided within ``GROUP_HOLD_DAYS``; tell their senders."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        ids = [p.id for p in posting.expire_held(s, rt.settings.groups.hold_days)]
    for post_id in ids:
        rt.queue.send(send_post_decision, notices.EXPIRED, post_id)
    if ids:
        log.info("%d held group post(s) expired", len(ids))


def enqueue_accepted(inbound_message_id: int) -> None:
    """After an inbound message for a group was processed: deliver its post if accepted,
    tell the moderators if it was held."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        found = s.execute(
            select(GroupPost.id, GroupPost.status).where(GroupPost.inbound_message_id == inbound_message_id)
        ).first()
    if found is None:
        return  # dropped: nothing stored, nothing to say
    if found.status == APPROVED:
        rt.queue.send(start_group_post, found.id)
    elif found.status == HELD:
        rt.queue.send(notify_moderators, found.id)


@job(queue_name="transactional", max_retries=8, min_backoff=2_000, max_backoff=600_000, throws=(PermanentFailure,))
def notify_moderators(post_id: int) -> None:
    """Tell each owner and moderator of a held post's group that it is waiting, and its
    author when they are a member."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        post = s.get(GroupPost, post_id)
        if post is None or post.status != HELD:
            return  # decided (or gone) before the note went out
        envelopes = [notices.held_email(rt.settings, post, m) for m in service.moderators(s, post.group)]
        if posting.is_member_post(s, post) is not None:
            # A member hears their post waits (web-only members get no copy to notice by).
            envelopes.append(notices.waiting_email(rt.settings, post))
    outgoing = Outgoing(rt.settings, rt.transport)
    try:
        for envelope in envelopes:
            outgoing.one_off(envelope)
    finally:
        outgoing.close()


def requeue_group_posts(within_days: int = 3) -> int:
    """Start again approved posts of the last days that have pending deliveries, or none
    at all (a queue message lost with a crash), and the days whose daily digests have
    pending deliveries; fan-out and sending are idempotent."""
    rt = runtime.current()
    since = utcnow() - timedelta(days=within_days)
    with rt.db.transaction() as s:
        undelivered = ~exists().where(GroupDelivery.post_id == GroupPost.id)
        pending = exists().where(GroupDelivery.post_id == GroupPost.id, GroupDelivery.status == "pending")
        ids = list(
            s.scalars(
                select(GroupPost.id).where(
                    GroupPost.status == APPROVED, GroupPost.decided_at >= since, undelivered | pending
                )
            )
        )
        pending_digests = list(
            s.scalars(
                select(GroupDigest.day)
                .where(
                    GroupDigest.created_at >= since,
                    exists().where(GroupDelivery.digest_id == GroupDigest.id, GroupDelivery.status == "pending"),
                )
                .distinct()
            )
        )
    for post_id in ids:
        rt.queue.send(start_group_post, post_id)
    for day in pending_digests:
        rt.queue.send(send_daily_digests, day.isoformat())
    return len(ids) + len(pending_digests)


def recover_groups(quiet: dict, token: str, clock=time.monotonic, within_days: int = 3) -> None:
    """One sweep of the group delivery ledger (the keeper's, beside the editions'): dead
    workers' claims are taken back (:func:`mailer.groups.sending.reap`: what may have
    reached the relay becomes ``unknown``, the rest ``pending``) and what they held is
    enqueued now; a post's or digest's due pending rows (of the last ``within_days``, as
    at start-up) that no live claim works on for a whole lease are enqueued again.
    ``quiet`` (post or digest -> since when, by ``clock``) is the caller's memory between
    sweeps. Extra queue messages are harmless: claims decide."""
    rt = runtime.current()
    lease = rt.settings.delivery.lease_seconds
    with rt.db.transaction() as s:
        reaped = sending.reap(s, lease)
        idle = sending.stalled(s, None if reaped else lease, utcnow() - timedelta(days=within_days))
    if reaped:
        log.warning("group deliveries: took back %d from a dead worker's claims", reaped)
    now = clock()
    for key, ids in idle.items():
        since = quiet.setdefault(key, now)
        if reaped or (
            now - since >= lease and rt.counters.hold(f"mailer:group-redrive:{key[0]}:{key[1]}", token, lease)
        ):
            for batch in sending.batches(ids, rt.settings.delivery.batch_size):
                rt.queue.send(send_group_deliveries, batch)
            quiet[key] = now
            if not reaped:
                log.warning("group %s %s: nothing in flight for %.0fs; enqueued %d again", *key, lease, len(ids))
    for key in set(quiet) - set(idle):
        quiet.pop(key)
