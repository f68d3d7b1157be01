"""The route kind for group addresses: ``slug@`` the list domain.

At RCPT the address must name an existing group (else the receiver answers 550 5.1.1);
a ``slug+anything@`` is no group address. The accepted message then runs through the
groups' moderation chain (:func:`mailer.groups.posting.receive`): dropped, held or
accepted. Nothing here ever answers the sender: notices to a sender come only from a
moderator's decision on a held post, and mail sent by a machine is dropped before that.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailer.groups.archive import DEFAULT_ATTACHMENT_MAX_BYTES
from mailer.groups.directory import find_group
from mailer.groups.models import Group
from mailer.groups.posting import receive
from mailer.inbound.routing import Arrival, InboundError, Route, split_address

GROUP = "group"


class GroupPosts:
    """``slug@<list domain>`` of an existing group; ``reserved`` local parts (the
    service's own mailboxes at that domain) are never a group's."""

    kind = GROUP

    def __init__(
        self,
        list_domain: str,
        max_recipients: int,
        reserved: frozenset[str] = frozenset(),
        attachment_max_bytes: int = DEFAULT_ATTACHMENT_MAX_BYTES,
    ):
        self.domain, self.max_recipients, self.reserved = list_domain.lower(), max_recipients, reserved
        self.attachment_max_bytes = attachment_max_bytes

    def match(self, session: Session, address: str) -> Route | None:
        parts = split_address(address)
        if parts is None or parts[1] or parts[2] != self.domain or parts[0] in self.reserved:
            return None
        group = find_group(session, parts[0])
        return Route(self.kind, address, group.id) if group is not None else None

    def handle(self, session: Session, route: Route, arrival: Arrival) -> str:
        group = session.get(Group, route.target_id)
        if group is None:
            raise InboundError("the group no longer exists")
        received = receive(
            session,
            group,
            arrival.message,
            arrival.raw,
            arrival.mail_from,
            list_domain=self.domain,
            max_recipients=self.max_recipients,
            inbound_message_id=arrival.message_id,
            attachment_max_bytes=self.attachment_max_bytes,
        )
        return received.outcome
