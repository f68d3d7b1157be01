"""The route kinds for groups: group addresses (``slug@`` the list domain), and the
per-member leave addresses (``unsubscribe+g<token>@``) of every group email's
``List-Unsubscribe``.

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
from mailer.groups.links import LEAVE_PREFIX
from mailer.groups.models import ACTIVE, Group, GroupMember
from mailer.groups.posting import receive
from mailer.groups.service import leave
from mailer.inbound.routing import Arrival, InboundError, Route, split_address
from subscribers.address_tokens import AddressTokens
from subscribers.tokens import TokenError

GROUP, GROUP_LEAVE = "group", "group-leave"


class GroupLeaveByMail:
    """``unsubscribe+g<token>@domain``: a mail to it removes the one member the token
    names from their group (the consent ledger says ``left`` by ``email``), as the
    one-click link does. The token is all that counts (the ``From:`` can say anything);
    it is signed for this purpose only, so a digest's unsubscribe token leaves no group.
    A forged token, or one a newer ``token_version`` replaced (the member was removed or
    rejoined since), matches nothing: the receiver refuses it at RCPT. Never answered."""

    kind = GROUP_LEAVE

    def __init__(self, tokens: AddressTokens, local: str, domain: str):
        self.tokens, self.local, self.domain = tokens, local.lower(), domain.lower()

    def match(self, session: Session, address: str) -> Route | None:
        parts = split_address(address)
        if parts is None or parts[0] != self.local or parts[2] != self.domain or not parts[1].startswith(LEAVE_PREFIX):
            return None
        try:
            claims = self.tokens.read(parts[1][len(LEAVE_PREFIX) :])
        except TokenError:
            return None
        member = session.get(GroupMember, claims.subscriber_id)  # the claim's id is the member's
        if member is None or member.token_version != claims.version:
            return None
        return Route(self.kind, address, member.id)

    def handle(self, session: Session, route: Route, arrival: Arrival) -> str:
        member = session.get(GroupMember, route.target_id)
        if member is None:
            raise InboundError("the membership no longer exists")
        was = member.status == ACTIVE
        left = leave(session, member, source="email")
        outcome = f"left group {member.group_id}" if left else ("already left" if not was else "not left")
        if arrival.automatic:
            outcome += f" ({arrival.automatic}; not answered)"
        return outcome


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
