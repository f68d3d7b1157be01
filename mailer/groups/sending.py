"""Delivering an accepted post (one copy per member) and a group's daily digest (one
email per digest member and day), through the group delivery ledger.

The same promises as the digest's ledger (:mod:`mailer.delivery.sending`):

* :func:`fan_out` writes one ``pending`` :class:`GroupDelivery` per active member who
  takes every message (unique per post and member: a second fan-out adds nobody twice;
  suppressed addresses are written ``skipped``); :func:`fan_out_digest` does the same
  for a day's :class:`GroupDigest` and the members who chose the daily digest (unique
  per digest and member: nobody gets a day's digest twice). Members who chose web only
  get neither;
* :func:`deliver` claims its rows (``pending -> sending``, under a claim number and a
  heartbeat) and commits that claim before a message leaves, so a redelivered queue
  message sends nothing twice; a member who left since the fan-out is skipped; a claim's
  rows are handed over in id order, and every outcome is committed before the next
  hand-over;
* every copy leaves through the one send path (:class:`mailer.mail.outgoing.Outgoing`:
  DKIM, a return path whose bounce counts for the address), under the same send rate
  limits as the digest; a relay's refusal is logged as a hard bounce, as the digest's is.

Transient failures go back to ``pending`` with a backoff; the ids to try again and the
delay are returned for the caller (the queue job) to schedule.

Crash recovery is the edition ledger's (:mod:`mailer.delivery.sending`), by the same
keeper: while a worker lives, its keeper refreshes the heartbeat of its claims
(:func:`beat`); a claim whose heartbeat is older than ``SEND_LEASE_SECONDS`` belongs to a
dead worker (``kill -9``) and the sweep (:func:`reap`) takes it back: its lowest
``sending`` row (the only one that may have reached the relay) becomes ``unknown`` and
is never resent on its own (``mailer groups status`` counts them, ``mailer groups
resend-unknown`` is the operator's word to send them again); its others go back to
``pending``. Pending rows of a post or digest that no live claim works on for a lease
(their queue messages were lost: a Redis restart) are enqueued again (:func:`stalled`).
"""

from __future__ import annotations

import functools
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, insert, or_, select, true, update
from sqlalchemy.orm import Session

from mailer.counters import counters_for
from mailer.db import Database, among, utcnow
from mailer.delivery import control
from mailer.delivery.limits import RateLimiter
from mailer.delivery.sending import LiveClaims, backoff_seconds, stopping
from mailer.delivery.suppression import record_refusal
from mailer.groups import copies, daily
from mailer.groups.directory import address_of
from mailer.groups.dmarc import DmarcPolicies
from mailer.groups.links import GroupLinks
from mailer.groups.models import (
    ACTIVE,
    APPROVED,
    DIGEST,
    EVERY,
    Group,
    GroupDelivery,
    GroupDigest,
    GroupMember,
    GroupPost,
)
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import PermanentFailure, TransientFailure, Transport
from mailer.settings import Settings
from subscribers import suppression

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED, SKIPPED, UNKNOWN = "pending", "sending", "sent", "failed", "skipped", "unknown"
STOPPED_WHILE_SENDING = "worker stopped while sending; not resent (see `groups resend-unknown`)"

# This process's live claims (claim number -> 0: one ledger), for the keeper's heartbeat.
live_claims = LiveClaims()


def fan_out(session: Session, post_id: int) -> list[int]:
    """One delivery per active every-message member of an approved post's group (those
    not written yet); the ids of the post's pending deliveries."""
    post = session.get(GroupPost, post_id)
    if post is None or post.status != APPROVED:
        return []
    return _fan_out(session, GroupDelivery.post_id, post_id, post.group_id, EVERY)


def fan_out_digest(session: Session, digest_id: int) -> list[int]:
    """One delivery per active daily-digest member of the digest's group (those not
    written yet); the ids of the digest's pending deliveries."""
    digest = session.get(GroupDigest, digest_id)
    if digest is None:
        return []
    return _fan_out(session, GroupDelivery.digest_id, digest_id, digest.group_id, DIGEST)


def _fan_out(session: Session, key, key_id: int, group_id: int, mode: str) -> list[int]:
    """The ledger rows of one post or digest (``key``: the column naming it) for the
    group's active members who chose ``mode``; the pending ids."""
    done = set(session.scalars(select(GroupDelivery.member_id).where(key == key_id)))
    people = session.execute(
        select(GroupMember.id, GroupMember.email).where(
            GroupMember.group_id == group_id, GroupMember.status == ACTIVE, GroupMember.delivery == mode
        )
    ).all()
    new = [p for p in people if p.id not in done]
    if new:
        barred: set[str] = set()
        for part in batches([p.email for p in new], 2000):  # bounded IN lists (SQLite's variable limit)
            barred |= suppression.suppressed_among(session, part)
        now = utcnow()
        rows = [
            {
                key.key: key_id,
                "member_id": p.id,
                "status": SKIPPED if p.email in barred else PENDING,
                "error": "the address is on the suppression list" if p.email in barred else None,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for p in new
        ]
        session.execute(insert(GroupDelivery), rows)
    return list(
        session.scalars(
            select(GroupDelivery.id).where(key == key_id, GroupDelivery.status == PENDING).order_by(GroupDelivery.id)
        )
    )


def batches(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


@dataclass
class Result:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: list[int] = field(default_factory=list)
    retry_delay: float = 0.0


def _claim(session: Session, ids: list[int], token: int | None = None):
    now = utcnow()
    return session.execute(
        update(GroupDelivery)
        .where(
            among(session, GroupDelivery.id, ids),
            GroupDelivery.status == PENDING,
            or_(GroupDelivery.next_attempt_at.is_(None), GroupDelivery.next_attempt_at <= now),
        )
        .values(status=SENDING, attempts=GroupDelivery.attempts + 1, updated_at=now, claim=token, heartbeat_at=now)
        .returning(
            GroupDelivery.id,
            GroupDelivery.post_id,
            GroupDelivery.digest_id,
            GroupDelivery.member_id,
            GroupDelivery.attempts,
        )
    ).all()


def _record(conn, row, token, status: str, error: str | None = None, next_at=None, **extra) -> None:
    """Write one outcome while the claim still holds the row: ``sending``, or ``unknown``
    if a sweep took the claim for dead meanwhile (the worker knows better); a row a sweep
    gave back to ``pending`` (and maybe to another claim since) is left alone."""
    values = {"status": status, "error": error and error[:500], "updated_at": utcnow(), "next_attempt_at": next_at}
    if status == SENT:
        values["sent_at"] = utcnow()
    conn.execute(
        update(GroupDelivery)
        .where(GroupDelivery.id == row.id, GroupDelivery.claim == token, GroupDelivery.status.in_((SENDING, UNKNOWN)))
        .values(**values, **extra)
    )


def prepare_post(session: Session, post: GroupPost, settings: Settings, dmarc: DmarcPolicies, links: GroupLinks):
    """The shared part of every copy of ``post``, with From rewritten if DMARC needs it."""
    group: Group = post.group
    rewrite, why = dmarc.rewrite(post.author_email)
    log.info("group post %s: From %s (%s)", post.id, "rewritten" if rewrite else "kept", why)
    return copies.prepare(
        post,
        group,
        address_of(group, settings.list_domain),
        links,
        rewrite_from=rewrite,
        list_domain=settings.list_domain,
    )


def deliver(
    db: Database, transport: Transport, settings: Settings, dmarc: DmarcPolicies, delivery_ids: list[int]
) -> Result:
    """Send the still-pending, due deliveries among ``delivery_ids`` (of one or more posts
    or daily digests). Each post and digest is prepared once for all its members."""
    cfg = settings.delivery
    result = Result()
    links = GroupLinks(settings)
    outgoing = Outgoing(settings, transport)
    limiter = RateLimiter(counters_for(settings.redis_url), cfg.rate, cfg.rate_for)
    limited = bool(cfg.rate or cfg.domain_rate or cfg.domain_rates)
    prepared: dict[tuple[str, int], copies.PreparedPost | daily.PreparedDigest | None] = {}
    with db.transaction() as s:  # before any claim: the DMARC lookup and a render take a while
        keys = s.execute(
            select(GroupDelivery.post_id, GroupDelivery.digest_id).where(GroupDelivery.id.in_(delivery_ids)).distinct()
        ).all()
        for post_id, digest_id in keys:
            if post_id is not None:
                post = s.get(GroupPost, post_id)
                prepared[("post", post_id)] = prepare_post(s, post, settings, dmarc, links) if post.raw else None
            elif digest_id is not None:
                prepared[("digest", digest_id)] = _prepare_digest(s, digest_id, settings, links)
    chunks = batches(list(delivery_ids), cfg.chunk_size)
    try:
        for n, chunk in enumerate(chunks):
            if stopping.is_set():  # asked to stop (SIGTERM): the rest goes again, elsewhere
                result.retry.extend(i for rest in chunks[n:] for i in rest)
                break
            token = secrets.randbits(62)
            with db.transaction() as s:  # the claim is committed before anything leaves
                # In id order: a dead claim's lowest `sending` row is the only one that may
                # have been handed over (see the module's docstring).
                rows = sorted(_claim(s, chunk, token), key=lambda r: r.id)
                if not rows:
                    continue
                live_claims.add(token, 0)
                people = {
                    m.id: (m.email, m.token_version, m.status, m.delivery, m.name)
                    for m in s.scalars(select(GroupMember).where(among(s, GroupMember.id, [r.member_id for r in rows])))
                }
            outcomes: dict[int, tuple] = {}
            written: set[int] = set()
            in_flight = None
            # Every outcome so far is committed before the next hand-over.
            flush = functools.partial(_flush, db, token, rows, outcomes, written, result)
            try:
                for row in rows:
                    quiet = live_claims.unrefreshed(token, cfg.lease_seconds)
                    if stopping.is_set() or quiet is not None:
                        # Stopping, or frozen long enough that a sweep may have given these
                        # rows to another worker: the rest goes back to pending, and again.
                        if quiet is not None:
                            log.warning("group claim not refreshed for %.0fs: giving back the rest of its chunk", quiet)
                        result.retry.extend(r.id for r in rows if r.id not in outcomes)
                        break
                    outcomes[row.id] = _send_one(
                        row, people, prepared, links, outgoing, limiter if limited else None, cfg, flush
                    )
                    if outcomes[row.id][1] == PENDING:
                        result.retry.append(row.id)
                        result.retry_delay = max(result.retry_delay, outcomes[row.id][4])
            except BaseException as exc:
                in_flight = (rows[len(outcomes)].id, type(exc).__name__)
                raise
            finally:
                live_claims.drop(token)
                _write(db, token, [r for r in rows if r.id not in written], outcomes, in_flight, result)
    finally:
        transport.close()
    return result


def _prepare_digest(s: Session, digest_id: int, settings: Settings, links: GroupLinks):
    """A day's digest rendered once, or None when nothing can be rendered (the day's posts
    were removed, or a render failed: logged, and its deliveries skipped, not retried)."""
    digest = s.get(GroupDigest, digest_id)
    if digest is None:
        return None
    try:
        return daily.prepared_digests.get(s, digest, settings, links)
    except Exception:  # noqa: BLE001 - one group's bad day must not stop a batch of others
        log.exception("group digest %s (%s, %s) could not be rendered", digest_id, digest.group_id, digest.day)
        return None


def _send_one(row, people, prepared, links, outgoing, limiter, cfg, before_send) -> tuple:
    """Send one claimed delivery: (id, status, error, next attempt, delay, refused address)."""
    email, version, status, mode, name = people.get(row.member_id, ("", 0, "gone", "", ""))
    member = GroupMember(id=row.member_id, email=email, token_version=version, name=name)
    if row.digest_id is not None:
        shared = prepared.get(("digest", row.digest_id))
        if shared is None:
            return (row.id, SKIPPED, "the day's digest has nothing to show", None, 0.0, None)
        if status != ACTIVE or mode != DIGEST:
            return (row.id, SKIPPED, "left the group or chose another delivery since", None, 0.0, None)
        envelope = daily.copy_for(shared, member, links)
    else:
        shared = prepared.get(("post", row.post_id))
        if shared is None:
            return (row.id, SKIPPED, "the post was removed", None, 0.0, None)
        if status != ACTIVE or mode != EVERY:
            return (row.id, SKIPPED, "left the group or chose another delivery since", None, 0.0, None)
        envelope = copies.copy_for(shared, member, links)
    if limiter is not None:
        limiter.acquire(email.rpartition("@")[2].lower())
    before_send()
    try:
        outgoing.one_off(envelope)
    except PermanentFailure as exc:
        return (row.id, FAILED, str(exc), None, 0.0, email if exc.recipient else None)
    except TransientFailure as exc:
        if row.attempts >= cfg.max_attempts:
            return (row.id, FAILED, f"gave up after {row.attempts} attempts: {exc}", None, 0.0, None)
        delay = backoff_seconds(row.attempts, cfg.retry_base_seconds, cfg.retry_max_seconds)
        return (row.id, PENDING, str(exc), utcnow() + timedelta(seconds=delay), delay, None)
    return (row.id, SENT, None, None, 0.0, None)


def _write(db: Database, token, rows, outcomes: dict[int, tuple], in_flight, result: Result) -> None:
    """Record outcomes of a claim's ``rows`` (one short transaction: this runs before
    every hand-over). Rows never attempted (an interrupted batch) go back to ``pending``;
    the one in the relay's hands when it stopped (``in_flight``: its id and why) becomes
    ``unknown`` (never sent again on its own: it may well have left)."""
    if not rows:
        return
    refused = []
    with db.engine.begin() as conn:
        for row in rows:
            found = outcomes.get(row.id)
            if found is None:
                if in_flight is not None and row.id == in_flight[0]:
                    _record(conn, row, token, UNKNOWN, f"interrupted while sending: {in_flight[1]}")
                else:
                    _record(conn, row, token, PENDING, attempts=GroupDelivery.attempts - 1)
                continue
            _, status, error, next_at, _, address = found
            _record(conn, row, token, status, error, next_at)
            if address:
                refused.append((address, error or ""))
            result.sent += status == SENT
            result.failed += status == FAILED
            result.skipped += status == SKIPPED
    if refused:
        with db.transaction() as s:
            for address, reply in refused:
                record_refusal(s, None, address, reply)


def _flush(db: Database, token, rows, outcomes: dict[int, tuple], written: set[int], result: Result) -> None:
    """Commit the outcomes not written yet (before a hand-over)."""
    _write(db, token, [r for r in rows if r.id in outcomes and r.id not in written], outcomes, None, result)
    written.update(outcomes)


def beat(db: Database) -> None:
    """Refresh the heartbeat of this process's live claims (the keeper calls this)."""
    with live_claims.beating():
        tokens = [t for ts in live_claims.by_edition().values() for t in ts]
        if tokens:
            with db.transaction() as s:
                s.execute(
                    update(GroupDelivery)
                    .where(GroupDelivery.status == SENDING, GroupDelivery.claim.in_(tokens))
                    .values(heartbeat_at=utcnow())
                )


def reap(session: Session, lease_seconds: float) -> int:
    """Take back dead workers' claims (:func:`mailer.delivery.control.reap_claims`): the
    row that may have reached the relay becomes ``unknown``, the others ``pending``."""
    return control.reap_claims(session, GroupDelivery, true(), lease_seconds, STOPPED_WHILE_SENDING)


def stalled(session: Session, lease_seconds: float | None, since) -> dict[tuple[str, int], list[int]]:
    """Due pending rows (created after ``since``) of each post and digest, ``("post",
    id)`` or ``("digest", id)``, that no live claim (a heartbeat within the lease) works
    on: whose queue messages may have been lost. ``lease_seconds`` None: all of them
    (after a dead claim was taken back, what it held goes now)."""
    live = set()
    if lease_seconds is not None:
        cutoff = utcnow() - timedelta(seconds=lease_seconds)
        live = set(
            session.execute(
                select(GroupDelivery.post_id, GroupDelivery.digest_id)
                .where(GroupDelivery.status == SENDING, GroupDelivery.heartbeat_at >= cutoff)
                .distinct()
            ).all()
        )
    found: dict[tuple[str, int], list[int]] = {}
    rows = session.execute(
        select(GroupDelivery.id, GroupDelivery.post_id, GroupDelivery.digest_id)
        .where(
            GroupDelivery.status == PENDING,
            GroupDelivery.created_at >= since,
            or_(GroupDelivery.next_attempt_at.is_(None), GroupDelivery.next_attempt_at <= utcnow()),
        )
        .order_by(GroupDelivery.id)
    )
    for rid, post_id, digest_id in rows:
        if (post_id, digest_id) not in live:
            found.setdefault(("post", post_id) if post_id is not None else ("digest", digest_id), []).append(rid)
    return found


def _of_group(group_id: int):
    """The condition on ``GroupDelivery`` rows of being one of the group's (a copy of
    one of its posts or daily digests)."""
    return or_(
        GroupDelivery.post_id.in_(select(GroupPost.id).where(GroupPost.group_id == group_id)),
        GroupDelivery.digest_id.in_(select(GroupDigest.id).where(GroupDigest.group_id == group_id)),
    )


def resend_unknown(session: Session, group_id: int) -> int:
    """The operator's word: the group's ``unknown`` deliveries (posts and daily digests)
    go back to ``pending``; returns how many (the caller enqueues them after its commit)."""
    return (
        session.execute(
            update(GroupDelivery)
            .where(GroupDelivery.status == UNKNOWN, _of_group(group_id))
            .values(status=PENDING, next_attempt_at=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )


def group_counts(session: Session, group_id: int) -> dict[str, int]:
    """The group's deliveries (posts and daily digests) by status."""
    return _by_status(session, _of_group(group_id))


def pending_of_group(session: Session, group_id: int) -> list[int]:
    """The ids of the group's pending deliveries (to enqueue after a resend)."""
    return list(
        session.scalars(
            select(GroupDelivery.id)
            .where(GroupDelivery.status == PENDING, _of_group(group_id))
            .order_by(GroupDelivery.id)
        )
    )


def digest_progress(session: Session, digest_id: int) -> dict[str, int]:
    """A daily digest's deliveries by status."""
    return _by_status(session, GroupDelivery.digest_id == digest_id)


def progress(session: Session, post_id: int) -> dict[str, int]:
    """The post's deliveries by status."""
    return _by_status(session, GroupDelivery.post_id == post_id)


def _by_status(session: Session, condition) -> dict[str, int]:
    rows = session.execute(select(GroupDelivery.status, func.count()).where(condition).group_by(GroupDelivery.status))
    return dict(rows.all())
