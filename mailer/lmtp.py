"""The LMTP receiver: one server for every address we receive mail at (an edge).

The MTA (Postfix ``transport_maps``: ``lmtp:inet:HOST:PORT``) hands over each message
with its envelope. Per recipient, at RCPT, the routing table (:mod:`mailer.inbound.routing`)
says whether the address is ours and genuine (else ``550 5.1.1``). At the end of DATA the
message is checked (``501 5.6.0`` per recipient when malformed; ``552 5.3.4`` when larger
than ``INBOUND_MAX_BYTES``), written to ``inbound_messages`` and committed, and only then
answered ``250`` per recipient; its ids go to the queue (``process_inbound``). A database
failure answers ``451`` (the MTA tries again later); a lost queue message is re-enqueued
from the table (:func:`mailer.actors.inbound.requeue_unprocessed`). We never send
a reply to anything received.

aiosmtpd runs the protocol in its own thread and event loop; database work runs in
threads beside it, so one slow commit does not stall other sessions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from mailer.db import Database
from mailer.inbound import store
from mailer.inbound.parse import Malformed, parse
from mailer.inbound.routing import Route, Router

log = logging.getLogger(__name__)

# aiosmtpd's own one-line answers at the end of DATA, which LMTP must give per recipient.
_DATA_REFUSALS = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big for this system",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.6.0 Line too long",
}


class _LMTP(LMTP):
    """aiosmtpd's LMTP, with the refusals aiosmtpd makes itself after DATA (too big, line
    too long) given once per recipient, as RFC 2033 requires (aiosmtpd gives one)."""

    async def push(self, status):
        if isinstance(status, str) and status in _DATA_REFUSALS and self.envelope is not None:
            status = "\r\n".join([_DATA_REFUSALS[status]] * max(1, len(self.envelope.rcpt_tos)))
        await super().push(status)


def _each(routes: list[Route], reply: str) -> str:
    """One reply line per accepted recipient, in RCPT order (RFC 2033, section 4.2)."""
    return "\r\n".join([reply] * len(routes))


class InboundHandler:
    """aiosmtpd handler hooks: route at RCPT, store then answer at DATA.

    ``enqueue(message_id)`` hands a stored message to the queue; when it fails the message
    is still stored, and answered 250 (the table is the truth, the queue only a nudge).
    """

    def __init__(self, db: Database, router: Router, enqueue: Callable[[int], None]):
        self.db, self.router, self.enqueue = db, router, enqueue

    def _route(self, address: str) -> Route | None:
        with self.db.transaction() as s:
            return self.router.route(s, address)

    def _store(self, routes: list[Route], mail_from: str, raw: bytes) -> list[int]:
        with self.db.transaction() as s:  # committed before anyone hears 250
            return [store.accept(s, r, mail_from, raw) for r in routes]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        try:
            route = await asyncio.to_thread(self._route, address)
        except Exception:
            log.exception("inbound: routing %r failed", address)
            return "451 4.3.0 Temporary failure, try again later"
        if route is None:
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        envelope.routes = [*getattr(envelope, "routes", []), route]
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        routes: list[Route] = getattr(envelope, "routes", [])
        raw: bytes = envelope.original_content
        try:
            await asyncio.to_thread(parse, raw)
        except Malformed as err:
            return _each(routes, f"501 5.6.0 Malformed message: {err}")
        mail_from = "" if envelope.mail_from in ("<>", "") else envelope.mail_from
        try:
            ids = await asyncio.to_thread(self._store, routes, mail_from, raw)
        except Exception:
            log.exception("inbound: storing a message failed")
            return _each(routes, "451 4.3.0 Temporary failure, try again later")
        for message_id in ids:
            try:
                self.enqueue(message_id)
            except Exception:  # stored: the sweep enqueues it again
                log.exception("inbound: enqueueing message %d failed", message_id)
        return "\r\n".join(f"250 2.0.0 Accepted as message {i}" for i in ids)


class _Controller(Controller):
    def factory(self):
        return _LMTP(self.handler, **self.SMTP_kwargs)


class Receiver:
    """The LMTP receiver on ``host:port``, served from a thread of this process."""

    def __init__(
        self,
        db: Database,
        router: Router,
        enqueue: Callable[[int], None],
        *,
        host: str = "127.0.0.1",
        port: int = 8024,
        max_bytes: int = 10_000_000,
    ):
        self.handler = InboundHandler(db, router, enqueue)
        self.controller = _Controller(
            self.handler,
            hostname=host,
            port=port,
            data_size_limit=max_bytes,
            decode_data=False,
            enable_SMTPUTF8=True,
            ident="mailer LMTP",
        )
        self.host, self.port = host, port

    def start(self) -> Receiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
