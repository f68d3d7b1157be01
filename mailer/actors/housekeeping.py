"""Housekeeping jobs of the subscriber layer (thin shells the scheduler sends)."""

from __future__ import annotations

import logging

from mailer import runtime
from mailer.queue import job
from subscribers.housekeeping import purge_unconfirmed

log = logging.getLogger(__name__)


@job(queue_name="transactional", max_retries=3)
def purge_unconfirmed_job() -> None:
    """Delete pending requests older than PURGE_UNCONFIRMED_AFTER_DAYS."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        n = purge_unconfirmed(s, rt.settings.purge_unconfirmed_days)
    log.info("purged %d unconfirmed subscribers", n)
