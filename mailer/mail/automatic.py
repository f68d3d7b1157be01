"""Was a received message sent by a machine? Then it is never answered, and never posted.

RFC 3834 says an automatic response must not be sent to automatic mail; mailing lists add
that bounces and out-of-office replies are not posts. Used by the inbound routes
(:mod:`mailer.inbound`) and the groups' moderation chain (:mod:`mailer.groups.chain`).
"""

from __future__ import annotations

from email.message import Message

_BULK = {"bulk", "junk", "list"}


def automatic(msg: Message, mail_from: str) -> str | None:
    """Why ``msg`` was sent by a machine (never answer it), or None for a person's mail:
    the null sender (bounces), ``Auto-Submitted`` other than ``no`` (RFC 3834),
    ``Precedence: bulk/junk/list``, a delivery or feedback report, a mailer-daemon."""
    if not mail_from or mail_from == "<>":
        return "null sender"
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto.split(';')[0].strip()[:40]}"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in _BULK:
        return f"Precedence: {precedence}"
    if msg.get_content_type() == "multipart/report":
        return "a delivery or feedback report"
    if mail_from.lower().partition("@")[0] in ("mailer-daemon", "postmaster"):
        return "sent by a mail system"
    return None
