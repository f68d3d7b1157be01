"""Which of our addresses a recipient is, and who handles mail to it: the routing table.

A :class:`Router` holds route kinds in order; the first whose :meth:`RouteKind.match`
recognises an address wins. There are four kinds:

* ``unsubscribe``: ``unsubscribe+<token>@<MAIL_FROM domain>``, the mailto of a digest's
  ``List-Unsubscribe``; the token (:mod:`subscribers.address_tokens`) names one reader.
* ``bounce``: the VERP return paths of :mod:`mailer.mail.verp` (signed, so a forged
  one is unknown), and the bare bounce mailbox, which feedback loops (ARF) may report to.

* ``group``: ``slug@<list domain>`` of an existing group (:mod:`mailer.inbound.groups`).
* ``group-leave``: ``unsubscribe+g<token>@<MAIL_FROM domain>``, the mailto of every group
  email's ``List-Unsubscribe``; the token names one member of one group.

Every other address is unknown (the receiver answers 550 5.1.1). A kind also
handles what was accepted for it (:meth:`RouteKind.handle`), so the table is the one place
that says what an address means.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from typing import Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Route:
    """What a recipient address is: its kind, the address as given, and the row it names
    (``target_id``: the subscriber of an unsubscribe address; None when none)."""

    kind: str
    address: str
    target_id: int | None = None


@dataclass(frozen=True)
class Arrival:
    """One accepted message as its handler sees it: the parsed message and its bytes, the envelope
    sender ("" for the null sender) and, when it is machine-sent, why (see
    :func:`mailer.inbound.parse.automatic`)."""

    message: Message
    raw: bytes
    mail_from: str
    automatic: str | None
    message_id: int | None = None  # the receiver's ledger row (inbound_messages.id)


class RouteKind(Protocol):
    kind: str

    def match(self, session: Session, address: str) -> Route | None:
        """The route of ``address`` if it is one of this kind's and genuine, else None.
        Called for every RCPT TO: cheap, and changes nothing."""

    def handle(self, session: Session, route: Route, arrival: Arrival) -> str:
        """Act on a message accepted for ``route``; return a short outcome for the ledger.
        Raise :class:`InboundError` to refuse it (its changes are rolled back)."""


class InboundError(Exception):
    """A handler refuses an accepted message; the reason is stored on its row."""


def split_address(address: str) -> tuple[str, str, str] | None:
    """``local+detail@domain`` -> (local, detail, domain), lower-cased; None when it is not
    a plain address (source routes, quoting, no domain)."""
    address = address.strip().strip("<>")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c in address for c in ' "\\,:;<>()[]'):
        return None
    base, _, detail = local.partition("+")
    return base.lower(), detail.lower(), domain.lower().rstrip(".")


class Router:
    """The routing table: route kinds, tried in the order they were added."""

    def __init__(self, kinds: list[RouteKind] | None = None):
        self._kinds: list[RouteKind] = []
        for k in kinds or []:
            self.add(k)

    def add(self, kind: RouteKind) -> None:
        if any(k.kind == kind.kind for k in self._kinds):
            raise ValueError(f"route kind {kind.kind!r} is already in the table")
        self._kinds.append(kind)

    def route(self, session: Session, address: str) -> Route | None:
        """The route of ``address``, or None: not an address of ours (answer 550)."""
        if len(address) > 320 or split_address(address) is None:
            return None
        for kind in self._kinds:
            found = kind.match(session, address)
            if found is not None:
                return found
        return None

    def kind(self, name: str) -> RouteKind:
        for k in self._kinds:
            if k.kind == name:
                return k
        raise InboundError(f"no route kind {name!r} in this receiver's table")
