"""Posting from the web: a member's form becomes an RFC 5322 message, which then takes the
very path an emailed post takes (stored by the receiver's ledger, the moderation chain,
threading, delivery): one way in, one set of rules.

:func:`compose` checks the form (lengths, a subject, a body) and builds the message:
``From`` the member (their name and address), ``To`` the group, a fresh ``Message-ID``
at the list domain, and for a reply ``In-Reply-To``/``References`` naming the post
replied to and its thread's first post, so mail clients thread it with the rest.
Raises :class:`mailer.validation.InvalidInput` (naming the field) on bad input.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from mailer.db import utcnow
from mailer.groups.directory import address_of
from mailer.groups.models import Group, GroupMember, GroupPost
from mailer.groups.threads import strip_prefixes
from mailer.validation import InvalidInput

MAX_SUBJECT = 200
MAX_BODY = 20_000  # characters: a long message, not a document
_POLICY = SMTP.clone(max_line_length=998)


def _clean_line(value: str) -> str:
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value or "").split())


def _clean_body(value: str) -> str:
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text).strip("\n")


def reply_subject(subject: str) -> str:
    """``Re: `` and the subject without its own reply prefixes."""
    return f"Re: {strip_prefixes(subject)[0] or '(no subject)'}"[:MAX_SUBJECT]


def compose(
    group: Group,
    member: GroupMember,
    *,
    subject: str,
    body: str,
    list_domain: str,
    parent: GroupPost | None = None,
    root: GroupPost | None = None,
    now: datetime | None = None,
) -> bytes:
    """The message a member's web form stands for (see the module)."""
    subject = _clean_line(subject) if parent is None else reply_subject(parent.subject)
    body = _clean_body(body)
    if parent is None and not subject:
        raise InvalidInput("subject", "Give your message a subject.")
    if len(subject) > MAX_SUBJECT:
        raise InvalidInput("subject", f"The subject can be at most {MAX_SUBJECT} characters.")
    if not body.strip():
        raise InvalidInput("body", "Write your message.")
    if len(body) > MAX_BODY:
        raise InvalidInput("body", f"A message can be at most {MAX_BODY:,} characters; this one has {len(body):,}.")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = Address(display_name=_clean_line(member.name), addr_spec=member.email)
    msg["To"] = address_of(group, list_domain)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or utcnow())
    msg["Message-ID"] = f"<web.{secrets.token_hex(12)}@{list_domain}>"
    if parent is not None:
        msg["In-Reply-To"] = parent.message_id
        chain = [p.message_id for p in (root, parent) if p is not None and p.message_id]
        msg["References"] = " ".join(dict.fromkeys(chain))
    msg.set_content(body + "\n", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()
