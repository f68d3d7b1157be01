"""The one send path: every message the service sends leaves through :class:`Outgoing`.

It DKIM-signs the message when a key is configured and hands it to the transport with a
return path of ours (VERP, see :mod:`mailer.mail.verp`), so every kind of email is
signed and every bounce can be matched. Callers say what the message is (a digest
delivery, a subscriber email, a partner notice or a one-off to an address); nobody else
calls a transport's ``send``.
"""

from __future__ import annotations

from mailer import telemetry as events
from mailer.mail.dkim import Signer
from mailer.mail.message import Envelope
from mailer.mail.transport import Transport
from mailer.mail.verp import ReturnPaths


class Outgoing:
    """Signs and sends through ``transport`` with the settings' DKIM key and bounce domain."""

    def __init__(self, settings, transport: Transport):
        self.transport = transport
        self.paths = ReturnPaths.from_settings(settings)
        self.sign = Signer(settings.delivery, settings.sender_domain)
        self._ahead: tuple[int, str] | None = None  # (delivery id, return path) sent as `then`
        self._uncounted = 0  # digest copies sent but not yet added to the sent-emails metric

    def _send(
        self,
        envelope: Envelope,
        return_path: str,
        then: tuple[str, str] | None = None,
        before_end=None,
        *,
        in_tens: bool = False,
    ) -> None:
        # A DKIM signature is a header folded with spaces: a dot-free message stays so.
        self.transport.send(
            return_path, envelope.recipient, self.sign(envelope.data), then, before_end, dot_free=envelope.dot_free
        )
        if not in_tens:
            events.email_sent()
            return
        # Digest copies are counted in tens: in a worker process the metric is a shared
        # file, and adding one cost 6 us a message (1.5 % of sending one). close() counts the rest.
        self._uncounted += 1
        if self._uncounted >= 10:
            self._count_deliveries()

    def _count_deliveries(self) -> None:
        if self._uncounted:
            events.email_sent(self._uncounted)
            self._uncounted = 0

    def delivery(
        self, envelope: Envelope, delivery_id: int, then: tuple[Envelope, int] | None = None, before_end=None
    ) -> None:
        """A digest copy, recorded as ``Delivery`` ``delivery_id``. ``then``: the copy and
        delivery this thread sends next, if known (the transport may announce it already);
        ``before_end``: see :meth:`mailer.mail.transport.Transport.send`."""
        path = self._ahead[1] if self._ahead is not None and self._ahead[0] == delivery_id else None
        following = None
        if then is not None:
            self._ahead = (then[1], self.paths.address(then[1]))  # its return path, made once
            following = (self._ahead[1], then[0].recipient)
        self._send(envelope, path or self.paths.address(delivery_id), following, before_end, in_tens=True)

    def to_subscriber(self, envelope: Envelope, subscriber_id: int) -> None:
        """A confirmation, "already subscribed" or manage-link email."""
        self._send(envelope, self.paths.subscriber(subscriber_id))

    def notice(self, envelope: Envelope, item_id: int) -> None:
        """A receipt or decision about an item, to its contact address."""
        self._send(envelope, self.paths.notice(item_id))

    def one_off(self, envelope: Envelope) -> None:
        """Anything else to one address (test sends): its bounce counts for that address."""
        self._send(envelope, self.paths.recipient(envelope.recipient))

    def close(self) -> None:
        self._count_deliveries()
        self.transport.close()
