"""The actor that processes inbound mail the LMTP receiver accepted (:mod:`mailer.lmtp`).

A thin shell over :mod:`mailer.inbound.store`: the ``inbound_messages`` row is the ledger,
claimed in the handler's own transaction, so a redelivered queue message does nothing.
A handler's refusal is recorded on the row; anything else (the database away) is retried.
"""

from __future__ import annotations

import logging
import threading

from mailer import runtime
from mailer.actors.groups import enqueue_accepted
from mailer.inbound import store
from mailer.inbound.groups import GROUP
from mailer.inbound.handlers import default_router
from mailer.inbound.models import InboundMessage
from mailer.inbound.routing import InboundError, Router
from mailer.queue import job

log = logging.getLogger(__name__)
_router: tuple = (None, None)  # (settings, the table built from them)
_lock = threading.Lock()


def router() -> Router:
    """The routing table for this process's settings (built once per settings object)."""
    global _router
    settings = runtime.current().settings
    with _lock:
        if _router[0] is not settings:
            _router = (settings, default_router(settings))
        return _router[1]


@job(queue_name="transactional", max_retries=10, min_backoff=1_000, max_backoff=300_000)
def process_inbound(message_id: int) -> None:
    """Handle accepted inbound message ``message_id`` (idempotent)."""
    rt = runtime.current()
    try:
        with rt.db.transaction() as s:
            outcome = store.process(s, router(), message_id)
            route = s.get(InboundMessage, message_id).route if outcome is not None else None
    except InboundError as err:
        with rt.db.transaction() as s:
            store.fail(s, message_id, str(err))
        log.warning("inbound message %d refused: %s", message_id, err)
        return
    if outcome is not None:
        log.info("inbound message %d: %s", message_id, outcome)
    if route == GROUP:
        enqueue_accepted(message_id)  # after the commit: the worker must find the post


def requeue_unprocessed(older_than_seconds: float = 0) -> int:
    """Enqueue again every accepted message still waiting (after a crash, or a queue
    message lost with Redis); how many."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        ids = store.unprocessed(s, older_than_seconds)
    for message_id in ids:
        rt.queue.send(process_inbound, message_id)
    return len(ids)
