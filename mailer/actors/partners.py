"""The job that emails partners about their items (receipt, decision).

A thin shell like the others in :mod:`mailer.actors`: the item row is the
ledger. The notice is claimed (its ``*_sent_at`` set and committed) before it leaves, so
a redelivered message sends nothing twice; a transient failure releases the claim and
lets Dramatiq retry.
"""

from __future__ import annotations

from mailer import runtime
from mailer.content.models import Item
from mailer.content.notices import RECEIPT, compose_notice, notice_owed
from mailer.db import utcnow
from mailer.mail.outgoing import Outgoing
from mailer.mail.transport import PermanentFailure
from mailer.queue import job


def _column(kind: str) -> str:
    return "receipt_sent_at" if kind == RECEIPT else "decision_sent_at"


@job(queue_name="transactional", max_retries=8, min_backoff=2_000, max_backoff=600_000, throws=(PermanentFailure,))
def send_partner_notice(kind: str, item_id: int) -> None:
    """Send the ``kind`` notice ("receipt", "approved" or "rejected") about item ``item_id``."""
    rt = runtime.current()
    with rt.db.transaction() as s:
        item = s.get(Item, item_id, with_for_update={"of": Item})
        if item is None or not notice_owed(kind, item):
            return
        envelope = compose_notice(kind, rt.settings, item)
        setattr(item, _column(kind), utcnow())
    outgoing = Outgoing(rt.settings, rt.transport)
    try:
        outgoing.notice(envelope, item_id)
    except PermanentFailure:
        raise  # the address is refused for good: keep the claim, do not retry
    except Exception:
        with rt.db.transaction() as s:
            setattr(s.get(Item, item_id), _column(kind), None)
        raise
    finally:
        outgoing.close()
