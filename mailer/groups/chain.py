"""The moderation chain: what happens to a message sent to a group, in a fixed order.

Each rule is a small function with the same signature, ``rule(post) -> Verdict | None``;
the first rule that returns a verdict decides. The order (README "Groups" says the same):

1. **loop**: the message already carries our own ``X-Loop`` or a ``List-Id`` of one of our
   groups: it came back from a group (two groups subscribed to each other, or a member's
   forwarding). Dropped: never posted, never answered.
2. **automatic**: auto-replies and bounces (``Auto-Submitted``, ``Precedence:
   bulk/junk/list``, the null sender, ``multipart/report``, mailer-daemon). Dropped:
   never posted, never answered (answering starts mail loops).
3. **banned**: the sender is banned from the group. Dropped, never answered.
4. **size and content**: larger than the group's limit, attachments where the group takes
   none, more than ``GROUP_MAX_RECIPIENTS`` addresses in To and Cc, a header too long or
   holding too many encoded-words, HTML with script: held for a moderator.
5. **member moderation**: a member's post under the group's posting policy (members post
   freely / members moderated / everyone moderated / announce-only, where only owners and
   moderators post); a trusted sender (approved and trusted by a moderator) is accepted.
6. **non-member**: held.

What passes every rule is accepted. Only the first three drop a message; everything else
a person may have meant is held, so nothing is lost without a moderator's decision.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from mailer.groups.models import (
    ALL_MODERATED,
    ANNOUNCE_ONLY,
    MEMBERS_MODERATED,
    Group,
    GroupMember,
)
from mailer.mail.automatic import automatic

ACCEPT, HOLD, DROP = "accept", "hold", "drop"

MAX_HEADER_FIELD = 8_000  # characters of one header field (folded) before a hold
MAX_ENCODED_WORDS = 200  # RFC 2047 encoded-words in the whole header section
MAX_PARTS = 100  # MIME parts walked; a message with more is held unopened
_ENCODED_WORD = re.compile(rb"=\?[^?\s]{1,40}\?[bBqQ]\?")
_ACTIVE_HTML = re.compile(rb"<\s*script|\bon[a-z]{3,20}\s*=|javascript\s*:|<\s*iframe|<\s*object|<\s*embed", re.I)


@dataclass(frozen=True)
class Verdict:
    action: str  # accept, hold, drop
    rule: str  # the rule that decided
    reason: str  # why, for the moderator (held) or the receiver's ledger (dropped)


@dataclass
class Submission:
    """What the chain looks at: the group, the parsed message and its bytes, the envelope
    sender, the author's address from ``From:``, the author's membership (if any), whether
    the author is trusted or banned, and our own loop markers."""

    group: Group
    message: Message
    raw: bytes
    mail_from: str
    author: str
    member: GroupMember | None
    sender_rule: str | None  # trust, ban or None
    loop_markers: LoopMarkers
    max_recipients: int


@dataclass(frozen=True)
class LoopMarkers:
    """How our own group mail is recognised: the ``X-Loop`` values we write (group
    addresses at the list domain) and the ``List-Id`` suffix of our groups."""

    list_domain: str

    def ours(self, msg: Message) -> str | None:
        for value in msg.get_all("X-Loop", []) or []:
            if str(value).strip().lower().endswith("@" + self.list_domain):
                return f"X-Loop: {str(value).strip()[:80]}"
        for value in msg.get_all("List-Id", []) or []:
            m = re.search(r"<([^<>]{1,250})>", str(value))
            if m and m.group(1).strip().lower().endswith("." + self.list_domain):
                return f"List-Id: <{m.group(1)[:80]}>"
        return None


def loop(p: Submission) -> Verdict | None:
    found = p.loop_markers.ours(p.message)
    if found:
        return Verdict(DROP, "loop", f"our own group mail came back ({found})")
    return None


def automatic_mail(p: Submission) -> Verdict | None:
    why = automatic(p.message, p.mail_from)
    if why:
        return Verdict(DROP, "automatic", f"sent by a machine ({why}); not posted, not answered")
    return None


def banned(p: Submission) -> Verdict | None:
    if p.sender_rule == "ban":
        return Verdict(DROP, "banned", "the sender is banned from this group")
    return None


def _header_section(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[:end]
    return raw


def size_and_content(p: Submission) -> Verdict | None:
    if len(p.raw) > p.group.max_bytes:
        return Verdict(HOLD, "size", f"larger than the group's limit ({len(p.raw)} > {p.group.max_bytes} bytes)")
    named = getaddresses([str(v) for k in ("To", "Cc") for v in (p.message.get_all(k, []) or [])])
    if len(named) > p.max_recipients:
        return Verdict(HOLD, "recipients", f"names {len(named)} addresses in To and Cc (limit {p.max_recipients})")
    head = _header_section(p.raw)
    if len(_ENCODED_WORD.findall(head)) > MAX_ENCODED_WORDS:
        return Verdict(HOLD, "headers", f"more than {MAX_ENCODED_WORDS} encoded-words in the header")
    for name, value in p.message.items():
        if len(str(value)) > MAX_HEADER_FIELD:
            return Verdict(HOLD, "headers", f"the {str(name)[:40]} header is longer than {MAX_HEADER_FIELD} characters")
    parts = 0
    for part in p.message.walk():
        parts += 1
        if parts > MAX_PARTS:
            return Verdict(HOLD, "content", f"more than {MAX_PARTS} MIME parts")
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = part.get_filename()
        if (filename or not ctype.startswith("text/")) and not p.group.allow_attachments:
            return Verdict(HOLD, "attachments", "has an attachment and this group takes none")
        if ctype == "text/html":
            body = part.get_payload(decode=True) or b""
            if _ACTIVE_HTML.search(body):
                return Verdict(HOLD, "content", "HTML with script or other active content")
    return None


def _moderator(member: GroupMember | None) -> bool:
    return member is not None and member.role in ("moderator", "owner")


def member_moderation(p: Submission) -> Verdict | None:
    if p.member is None:
        return None  # the next rule's
    if p.sender_rule == "trust":
        return Verdict(ACCEPT, "member", "a trusted sender")
    policy = p.group.posting_policy
    if policy == ANNOUNCE_ONLY and not _moderator(p.member):
        return Verdict(HOLD, "member", "announce-only: only owners and moderators post")
    if policy == MEMBERS_MODERATED and not _moderator(p.member):
        return Verdict(HOLD, "member", "members' posts are moderated in this group")
    if policy == ALL_MODERATED:
        return Verdict(HOLD, "member", "every post is moderated in this group")
    return Verdict(ACCEPT, "member", "a member's post")


def non_member(p: Submission) -> Verdict | None:
    if p.sender_rule == "trust" and p.group.posting_policy != ALL_MODERATED:
        return Verdict(ACCEPT, "non-member", "a trusted sender")
    return Verdict(HOLD, "non-member", "the sender is not a member of this group")


RULES: tuple[Callable[[Submission], Verdict | None], ...] = (
    loop,
    automatic_mail,
    banned,
    size_and_content,
    member_moderation,
    non_member,
)


def run(p: Submission) -> Verdict:
    """The verdict of the first rule that decides (the last one always does)."""
    for rule in RULES:
        verdict = rule(p)
        if verdict is not None:
            return verdict
    raise AssertionError("non_member always decides")  # pragma: no cover
