"""Actors the scheduler sends on a timer: partner feed polling and bounce processing.

Thin shells over the domain (:func:`mailer.content.feeds.poll_feeds`,
:mod:`mailer.delivery.bounces`); each records its outcome on the scheduler's run when
given its id (see :mod:`mailer.schedule_runs`).
"""

from __future__ import annotations

import logging
import mailbox
from datetime import date
from pathlib import Path

from mailer import runtime, schedule_runs
from mailer import telemetry as events
from mailer.content import feeds
from mailer.content.fetch import FetchOptions
from mailer.delivery import bounces
from mailer.mail.verp import ReturnPaths
from mailer.queue import job

log = logging.getLogger(__name__)


@job(queue_name="digest", max_retries=0, time_limit=30 * 60_000)
def poll_feeds(run_id: int | None = None) -> None:
    """Poll every active partner's feed once (``FEED_POLL_MINUTES`` apart). No retries: a
    failing feed is recorded on its partner and the next poll tries again."""
    rt = runtime.current()
    st = rt.settings
    options = FetchOptions(timeout=st.feed_timeout, max_bytes=st.feed_max_bytes, allow_private=st.feed_allow_private)
    results = feeds.poll_feeds(rt.db, options, today=date.today())
    events.feed_polls(results)
    new = sum(len(r.new_item_ids) for r in results)
    errors = [r.partner for r in results if r.error]
    detail = f"{len(results)} feed(s), {new} new item(s)" + (f", errors: {', '.join(errors)}" if errors else "")
    log.info("feed poll: %s", detail)
    with rt.db.transaction() as s:
        schedule_runs.finish(s, run_id, schedule_runs.DONE if not errors else schedule_runs.FAILED, detail)


@job(queue_name="digest", max_retries=0)
def process_bounces(run_id: int | None = None) -> None:
    """Apply the bounce and complaint reports that arrived in ``BOUNCE_SOURCE`` (a maildir).

    Only messages in ``new/`` are read; once applied (committed) each moves to ``cur/``
    marked seen, so no report is applied twice and the operator can still read them."""
    rt = runtime.current()
    source = rt.settings.bounce_source
    try:
        if source is None or not (Path(source) / "new").is_dir():
            raise ValueError(f"BOUNCE_SOURCE {source} is not a maildir (no new/ directory)")
        box = mailbox.Maildir(str(source), factory=None, create=False)
        fresh = [(k, m) for k in box.iterkeys() if (m := box.get_message(k)).get_subdir() == "new"]
        paths = ReturnPaths.from_settings(rt.settings)
        reports = [r for _, msg in fresh for r in bounces.parse(msg, paths)]
    except (ValueError, OSError) as err:
        with rt.db.transaction() as s:
            schedule_runs.finish(s, run_id, schedule_runs.FAILED, str(err))
        log.error("bounce processing: %s", err)
        return
    with rt.db.transaction() as s:
        tally = bounces.apply(s, reports)
        detail = (
            f"{len(fresh)} message(s): hard {tally.hard}, soft {tally.soft}, complaints "
            f"{tally.complaints}, unmatched {tally.unmatched}"
        )
        schedule_runs.finish(s, run_id, schedule_runs.DONE, detail)
    for k, msg in fresh:
        msg.set_subdir("cur")
        msg.add_flag("S")
        box[k] = msg
    log.info("bounces: %s", detail)
