"""The queue's jobs, in one place: thin shells over the domain.

Each job opens its own transaction, calls domain functions, and enqueues follow-up work
only after the commit. Messages carry ids only, and every job is safe to run twice: the
ledger (a delivery's or an item's row), not the queue, decides whether an email goes out.

Three queues: ``transactional`` (confirmations, manage links, partner notices: one person
waiting), ``digest`` (editions in batches) and ``imports`` (subscriber imports confirmed in
the console: long, one at a time, kept off the other two). Digest jobs have the lower
priority, so a worker that has digest batches prefetched still takes a confirmation first;
production may also run a worker with ``--queues transactional`` alone.

The jobs are plain functions (:func:`mailer.queue.job` only records their options), so
importing them touches no broker: :func:`mailer.boot.boot` declares :data:`JOBS` on the
process's queue, and callers enqueue with ``runtime.current().queue.send(job, *args)``.
Actor names are the function names; workers on other machines rely on them.
"""

from __future__ import annotations

from mailer.actors.digest import (
    run_period,
    send_deliveries,
    send_due_editions,
    start_edition,
    sweep,
    watch_edition,
)
from mailer.actors.groups import (
    expire_held_posts,
    notify_moderators,
    send_daily_digests,
    send_group_deliveries,
    send_group_email,
    send_post_decision,
    start_group_post,
)
from mailer.actors.housekeeping import purge_unconfirmed_job
from mailer.actors.imports import run_import
from mailer.actors.inbound import process_inbound
from mailer.actors.partners import send_partner_notice
from mailer.actors.scheduled import poll_feeds, process_bounces
from mailer.actors.transactional import send_transactional

JOBS = (
    send_transactional,
    send_partner_notice,
    send_deliveries,
    start_edition,
    watch_edition,
    sweep,
    run_period,
    send_due_editions,
    purge_unconfirmed_job,
    poll_feeds,
    process_bounces,
    process_inbound,
    run_import,
    send_group_email,
    send_post_decision,
    start_group_post,
    send_group_deliveries,
    expire_held_posts,
    notify_moderators,
    send_daily_digests,
)
