"""Absolute URLs for the links in emails, built without a request (workers have none).

The paths here are the routes of :mod:`mailer.web.subscribers`; a test checks they agree.
"""

from __future__ import annotations

from mailer.settings import Settings
from subscribers.address_tokens import AddressTokens
from subscribers.tokens import Tokens


class Links:
    def __init__(self, settings: Settings):
        self.base = settings.base_url
        self.tokens = Tokens(settings.secret_key, settings.secret_key_fallbacks)
        self.address_tokens = AddressTokens(settings.secret_key, settings.secret_key_fallbacks)
        self.unsubscribe_local, _, self.unsubscribe_domain = settings.unsubscribe_mailto.partition("@")

    def confirm(self, subscriber_id: int, version: int) -> str:
        return f"{self.base}/confirm/{self.tokens.make('confirm', subscriber_id, version)}"

    def manage(self, subscriber_id: int, version: int) -> str:
        return f"{self.base}/manage/{self.tokens.make('manage', subscriber_id, version)}"

    def unsubscribe(self, subscriber_id: int, version: int) -> str:
        return f"{self.base}/u/{self.tokens.make('unsubscribe', subscriber_id, version)}"

    def unsubscribe_mailto(self, subscriber_id: int, version: int) -> str:
        """The address whose mail unsubscribes this subscriber (``List-Unsubscribe``'s
        mailto; :mod:`mailer.inbound` receives it)."""
        token = self.address_tokens.make(subscriber_id, version)
        return f"{self.unsubscribe_local}+{token}@{self.unsubscribe_domain}"

    def view(self, period: str, subscriber_id: int, version: int) -> str:
        """This subscriber's own web copy of the ``period`` edition (see mailer/web/digest.py)."""
        return f"{self.base}/view/{period}/{self.tokens.make('view', subscriber_id, version)}"

    def subscribe(self) -> str:
        return f"{self.base}/subscribe"
