"""The job that sends one person's transactional email (confirm, manage, link)."""

from __future__ import annotations

from mailer import runtime
from mailer.delivery.transactional import compose_transactional
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import PermanentFailure
from mailer.queue import job
from subscribers.models import ERASED, Subscriber


@job(queue_name="transactional", max_retries=8, min_backoff=2_000, max_backoff=600_000, throws=(PermanentFailure,))
def send_transactional(kind: str, subscriber_id: int) -> None:
    """Send a confirmation ("confirm"), "already subscribed" ("manage") or requested
    manage-link ("link") email."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == ERASED:
            return  # erased or purged before the email went out
        envelope = compose_transactional(kind, rt.settings, sub)
    outgoing = Outgoing(rt.settings, rt.transport)
    try:
        outgoing.to_subscriber(envelope, subscriber_id)
    finally:
        outgoing.close()
