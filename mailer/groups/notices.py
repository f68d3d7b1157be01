"""The emails groups send to one person: confirm joining, "you are already a member",
a member's own post waiting for a moderator, a held post rejected (with the moderator's
reason) or expired.

All carry ``Auto-Submitted: auto-generated`` (RFC 3834), so auto-responders stay quiet.
Group names, subjects and reasons are data: they reach the HTML part escaped, and the
subject line only as a single cleaned line. None of these answers mail that a machine
sent (the moderation chain drops that before anything is stored).
"""

from __future__ import annotations

from html import escape

from mailer.groups.directory import address_of
from mailer.groups.links import GroupLinks
from mailer.groups.models import Group, GroupMember, GroupPost
from mailer.mail.message import Envelope, MessageTemplate
from mailer.settings import Settings

JOIN, ALREADY, REJECTED, EXPIRED = "join", "already", "rejected", "expired"


def _one_line(text: str, limit: int = 80) -> str:
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _envelope(settings: Settings, subject: str, to_name: str, to: str, paragraphs: list[str]) -> Envelope:
    text = "\n\n".join(paragraphs) + f"\n\n--\nEnd Racism This Generation\n{settings.postal_address}\n"
    html = (
        "<!doctype html><html><body>"
        + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        + f"<p>End Racism This Generation<br>{escape(settings.postal_address)}</p></body></html>"
    )
    template = MessageTemplate(mail_from=settings.mail_from, subject=subject, auto_submitted=True)
    return template.build(to_name=to_name, to_address=to, text=text, html=html)


def membership_email(kind: str, settings: Settings, group: Group, member: GroupMember) -> Envelope:
    """The confirmation link (``join``) or, for an address that is already a member, a
    note with its links (``already``), so the page says the same whoever typed it."""
    links = GroupLinks(settings)
    name = _one_line(group.name)
    if kind == JOIN:
        return _envelope(
            settings,
            f"Please confirm you want to join {name}",
            "",
            member.email,
            [
                f"Someone, hopefully you, asked to join the group {group.name} with this address.",
                f"To join, open this link and press the button: {links.confirm(member.id, member.token_version)}",
                f"The link works for {settings.confirm_max_age_days} days. If you did not ask, ignore "
                "this email: nothing happens and we will not write again.",
            ],
        )
    return _envelope(
        settings,
        f"You are already a member of {name}",
        member.name,
        member.email,
        [
            f"Someone asked to join {group.name} with this address, which is already a member. Nothing changed.",
            f"Choose how you get its messages: {links.manage(member.id, member.token_version)}",
            f"Leave the group: {links.leave(member.id, member.token_version)}",
        ],
    )


def decision_email(kind: str, settings: Settings, post: GroupPost) -> Envelope:
    """To a held post's sender: rejected (with the moderator's reason) or expired."""
    group = post.group
    subject = _one_line(post.subject or "(no subject)", 60)
    address = address_of(group, settings.list_domain)
    if kind == REJECTED:
        lines = [
            f'Your message "{subject}" to {group.name} ({address}) was not posted.',
            f"The moderator's reason: {post.decision_reason}",
        ]
    else:
        lines = [
            f'Your message "{subject}" to {group.name} ({address}) was held for a moderator and '
            f"not approved within {settings.groups.hold_days} days, so it was not posted.",
            "If it still matters, you can send it again.",
        ]
    lines.append(f"About the group: {GroupLinks(settings).page(group.slug)}")
    return _envelope(settings, f"Your message to {_one_line(group.name)} was not posted", "", post.author_email, lines)


def waiting_email(settings: Settings, post: GroupPost) -> Envelope:
    """To a member whose own post is held: it waits for a moderator, and why. Members
    only (their address is confirmed): a note to any sender would be backscatter."""
    group = post.group
    return _envelope(
        settings,
        f"Your message to {_one_line(group.name)} is waiting for a moderator",
        post.author_name,
        post.author_email,
        [
            f'Your message "{_one_line(post.subject or "(no subject)", 60)}" to {group.name} is waiting for '
            f"a moderator ({post.hold_reason.partition(': ')[2] or post.hold_reason}).",
            "You will hear from us if it is not posted. Once approved it goes to the group like any message; "
            f"if you read the group on the web, it will be there: {GroupLinks(settings).page(group.slug)}",
            f"Undecided messages expire after {settings.groups.hold_days} days.",
        ],
    )


def held_email(settings: Settings, post: GroupPost, moderator: GroupMember) -> Envelope:
    """To one of the group's owners or moderators: a post is waiting, why, and their link
    to the held posts (approve, trust, reject with a reason, discard)."""
    group = post.group
    links = GroupLinks(settings)
    who = post.author_email or "a sender without a usable address"
    return _envelope(
        settings,
        f"A message to {_one_line(group.name)} is waiting for a moderator",
        moderator.name,
        moderator.email,
        [
            f'A message from {who} to {group.name}, "{_one_line(post.subject or "(no subject)", 60)}", '
            f"was held: {post.hold_reason}.",
            f"Approve, reject or discard it: {links.moderate(moderator.id, moderator.token_version)}",
            f"Undecided messages expire after {settings.groups.hold_days} days, and their senders are told. "
            "The first moderator to decide wins; the others see it decided.",
        ],
    )
