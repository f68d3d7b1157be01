"""The route kinds of today: unsubscribe by mail, and bounce and complaint reports.

Neither ever answers the sender: an unsubscribe needs no reply (the person asked to hear
no more), and a report is from a machine. So no auto-reply, bounce or loop can start here.
"""

from __future__ import annotations

from email import message_from_bytes, policy

from sqlalchemy.orm import Session

from mailer.delivery import bounces
from mailer.groups.directory import reserved_locals
from mailer.groups.links import leave_address_tokens
from mailer.inbound.groups import GroupLeaveByMail, GroupPosts
from mailer.inbound.routing import Arrival, InboundError, Route, Router, split_address
from mailer.mail.verp import ReturnPaths
from subscribers.address_tokens import AddressTokens
from subscribers.models import Subscriber
from subscribers.service import unsubscribe
from subscribers.tokens import TokenError

UNSUBSCRIBE, BOUNCE = "unsubscribe", "bounce"


class UnsubscribeByMail:
    """``unsubscribe+<token>@domain``: a mail to it unsubscribes the reader the token names,
    as the one-click link does (suppression, consent ledger with source ``email``).

    The token is all that counts: the ``From:`` can say anything, and an auto-reply or a
    message with a null sender unsubscribes too (it was sent to that reader's own address).
    A token that is forged, revoked (a newer ``token_version``) or names nobody (test sends
    use subscriber 0) matches nothing, so the receiver refuses it at RCPT."""

    kind = UNSUBSCRIBE

    def __init__(self, tokens: AddressTokens, local: str, domain: str):
        self.tokens, self.local, self.domain = tokens, local.lower(), domain.lower()

    def match(self, session: Session, address: str) -> Route | None:
        parts = split_address(address)
        if parts is None or parts[0] != self.local or parts[2] != self.domain or not parts[1]:
            return None
        try:
            claims = self.tokens.read(parts[1])
        except TokenError:
            return None
        sub = session.get(Subscriber, claims.subscriber_id)
        if sub is None or sub.status == "erased" or sub.token_version != claims.version:
            return None
        return Route(self.kind, address, sub.id)

    def handle(self, session: Session, route: Route, arrival: Arrival) -> str:
        sub = session.get(Subscriber, route.target_id)
        if sub is None:
            raise InboundError("the subscriber no longer exists")
        changed = unsubscribe(session, sub, source="email")
        outcome = "unsubscribed" if changed else "already unsubscribed"
        if arrival.automatic:
            outcome += f" ({arrival.automatic}; not answered)"
        return outcome


class BounceReports:
    """The VERP return paths (``bounces+...@``, signed) and the bare bounce mailbox: DSN
    bounces and ARF complaints, applied with :mod:`mailer.delivery.bounces` as
    ``mailer bounces process`` applies them."""

    kind = BOUNCE

    def __init__(self, paths: ReturnPaths):
        self.paths = paths

    def match(self, session: Session, address: str) -> Route | None:
        if self.paths.target(address) is not None:
            return Route(self.kind, address)
        parts = split_address(address)
        if parts == (self.paths.local.lower(), "", self.paths.domain.lower()):
            return Route(self.kind, address)  # feedback loops report here
        return None

    def handle(self, session: Session, route: Route, arrival: Arrival) -> str:
        msg = arrival.message
        address = route.address.strip().strip("<>")
        if self.paths.target(address) is not None and address.isprintable():
            # The envelope recipient is the return path the report came back to, checked
            # at RCPT: name it first (as a delivery agent's Delivered-To does), so headers
            # inside the report cannot point it at someone else's delivery.
            msg = message_from_bytes(
                b"Delivered-To: " + address.encode() + b"\r\n" + arrival.raw, policy=policy.compat32
            )
        reports = bounces.parse(msg, self.paths)
        if not reports:
            return "no bounce or complaint report in it"
        tally = bounces.apply(session, reports)
        return (
            f"hard {tally.hard}, soft {tally.soft}, complaints {tally.complaints}, "
            f"unmatched {tally.unmatched}, suppressed {len(tally.suppressed)}"
        )


def default_router(settings) -> Router:
    """The routing table, from ``settings`` (``MAIL_FROM``'s domain for unsubscribe
    addresses, the bounce settings for return paths, ``LIST_DOMAIN`` for groups). The
    service's own mailboxes come first, so no group can take one of them."""
    local, _, domain = settings.unsubscribe_mailto.partition("@")
    return Router(
        [
            UnsubscribeByMail(AddressTokens(settings.secret_key, settings.secret_key_fallbacks), local, domain),
            GroupLeaveByMail(leave_address_tokens(settings), local, domain),
            BounceReports(ReturnPaths.from_settings(settings)),
            GroupPosts(
                settings.list_domain,
                settings.groups.max_recipients,
                reserved_locals(settings),
                settings.groups.archive_attachment_max_bytes,
            ),
        ]
    )
