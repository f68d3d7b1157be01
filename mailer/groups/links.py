"""Absolute URLs of group pages and the links in group emails, built without a request.

The paths are the routes of :mod:`mailer.web.groups`; a test checks they agree.
"""

from __future__ import annotations

from mailer.settings import Settings
from subscribers.address_tokens import AddressTokens
from subscribers.tokens import Tokens

# Address tokens of group leave addresses start with this letter, so the unsubscribe
# mailbox tells them from the digest's (which start with a digit).
LEAVE_PREFIX = "g"


def leave_address_tokens(settings: Settings) -> AddressTokens:
    """The signer of ``unsubscribe+g<token>@`` leave addresses (its own purpose: a
    digest unsubscribe token can never leave a group, nor the reverse)."""
    return AddressTokens(settings.secret_key, settings.secret_key_fallbacks, purpose="group-leave")


class GroupLinks:
    def __init__(self, settings: Settings, tokens: Tokens | None = None):
        self.base = settings.base_url
        self.tokens = tokens or Tokens(settings.secret_key, settings.secret_key_fallbacks)
        self.mailbox, _, self.mail_domain = settings.unsubscribe_mailto.partition("@")
        self.address_tokens = leave_address_tokens(settings)

    def page(self, slug: str) -> str:
        return f"{self.base}/groups/{slug}"

    def archive(self, slug: str) -> str:
        return f"{self.base}/groups/{slug}/archive"

    def post(self, slug: str, post_id: int) -> str:
        return f"{self.base}/groups/{slug}/posts/{post_id}"

    def thread(self, slug: str, thread_id: int) -> str:
        return f"{self.base}/groups/{slug}/threads/{thread_id}"

    def web(self, slug: str, member_id: int, version: int, post_id: int | None = None) -> str:
        """A member's way in to the group's web pages (archive, posting): the page sets a
        member cookie and shows the post (or the archive)."""
        token = self.tokens.make("group-web", member_id, version)
        return f"{self.base}/groups/{slug}/enter/{token}" + (f"?post={post_id}" if post_id else "")

    def confirm(self, member_id: int, version: int) -> str:
        return f"{self.base}/groups/confirm/{self.tokens.make('group-confirm', member_id, version)}"

    def leave(self, member_id: int, version: int) -> str:
        """The one-click leave link (RFC 8058 ``List-Unsubscribe``); never expires."""
        return f"{self.base}/groups/leave/{self.tokens.make('group-leave', member_id, version)}"

    def leave_mailto(self, member_id: int, version: int) -> str:
        """The address that removes exactly this member from their group when mailed (the
        ``mailto:`` of every group email's ``List-Unsubscribe``); never expires."""
        token = self.address_tokens.make(member_id, version)
        return f"{self.mailbox}+{LEAVE_PREFIX}{token}@{self.mail_domain}"

    def manage(self, member_id: int, version: int) -> str:
        """The member's delivery choice (every message, daily digest, web only)."""
        return f"{self.base}/groups/member/{self.tokens.make('group-manage', member_id, version)}"

    def moderate(self, member_id: int, version: int) -> str:
        """A moderator's (or owner's) page of the group's held posts."""
        return f"{self.base}/groups/moderate/{self.tokens.make('group-moderate', member_id, version)}"
