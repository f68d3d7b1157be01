"""Which thread a group post belongs to.

Contract:

* Every stored post (held or approved) gets a ``thread_id``: the id of its thread's root
  post (a new thread's root is the post itself, ``thread_id == id``). It is set once, when
  :func:`mailer.groups.posting.receive` stores the post, and never changes afterwards
  (the daily digest and the archive group posts by it).
* A reply joins the thread of the nearest message it names: ``In-Reply-To`` first, then
  ``References`` from the newest id backwards, matched against the ``Message-ID`` of the
  group's own posts (any state: a reply to a post still held still belongs with it).
* Clients that drop those headers (Outlook and NHSmail often do, or send an id we never
  saw) are matched by subject: a message that *looks like a reply* (a reply prefix such as
  ``RE:``, ``AW:``, ``SV:``, ``Antw:``, or an Outlook ``Thread-Index`` longer than a first
  message's) joins the most recently active thread of the group whose normalised subject
  is the same, if that thread saw a post within :data:`SUBJECT_WINDOW`. A message that
  does not look like a reply always starts a new thread, however its subject reads.
* :func:`subject_key` is the normalised subject: reply prefixes and ``[tag]`` prefixes
  (our own ``[group]`` and gateways' ``[EXTERNAL]``) stripped, case and spacing folded.

Functions take a ``session`` and never commit.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta
from email.message import Message

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.db import utcnow
from mailer.groups.models import GroupPost

SUBJECT_WINDOW = timedelta(days=60)  # a "Re: Minutes" older than this starts afresh
_MESSAGE_IDS = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")
_MAX_REFERENCES = 40  # the newest ids of a References field that are looked at
# Reply prefixes of common mail clients in English, German, Nordic, Dutch, French,
# Italian, Polish, Portuguese/Spanish and Outlook's counted form ("RE[2]:").
_REPLY = re.compile(
    r"^(?:re|aw|sv|vs|antw|antwort|r|rif|réf|ref|odp|res|atb|ynt)\s*(?:\[\d{1,3}\]|\(\d{1,3}\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_TAG = re.compile(r"^\[[^\[\]]{1,60}\]\s*")
_THREAD_INDEX_FIRST = 22  # bytes of Outlook's Thread-Index in a thread's first message


def strip_prefixes(subject: str) -> tuple[str, bool]:
    """(subject without reply and tag prefixes, whether a reply prefix was there)."""
    text, replied = " ".join((subject or "").split()), False
    for _ in range(20):  # "RE: [group] AW: Re: ..." chains are short; a bomb is cut off
        found = _REPLY.match(text)
        if found:
            text, replied = text[found.end() :], True
            continue
        found = _TAG.match(text)
        if found:
            text = text[found.end() :]
            continue
        break
    return text, replied


def subject_key(subject: str) -> str:
    """The normalised subject threads are matched on ("" for none)."""
    return strip_prefixes(subject)[0].casefold()[:300]


def message_ids(value) -> list[str]:
    """The ``<id@host>`` tokens of a header value, in order (first 8,000 characters)."""
    return _MESSAGE_IDS.findall(str(value or "")[:8000])


def looks_like_reply(msg: Message, subject: str) -> bool:
    """A reply prefix in the subject, or an Outlook ``Thread-Index`` of a later message."""
    if strip_prefixes(subject)[1]:
        return True
    index = str(msg.get("Thread-Index") or "").strip()
    if not index or len(index) > 2000:
        return False
    try:
        return len(base64.b64decode(index, validate=False)) > _THREAD_INDEX_FIRST
    except (binascii.Error, ValueError):
        return False


def _by_reference(session: Session, group_id: int, msg: Message, exclude: int) -> int | None:
    wanted = message_ids(msg.get("In-Reply-To"))[:1]
    wanted += [m for m in reversed(message_ids(msg.get("References"))[-_MAX_REFERENCES:]) if m not in wanted]
    if not wanted:
        return None
    found = dict(
        session.execute(
            select(GroupPost.message_id, func.coalesce(GroupPost.thread_id, GroupPost.id))
            .where(GroupPost.group_id == group_id, GroupPost.message_id.in_(wanted), GroupPost.id != exclude)
            .order_by(GroupPost.id)  # the newest post with a repeated id wins
        ).all()
    )
    return next((found[m] for m in wanted if m in found), None)


def _by_subject(session: Session, group_id: int, key: str, now: datetime, exclude: int) -> int | None:
    if not key:
        return None
    return session.scalar(
        select(func.coalesce(GroupPost.thread_id, GroupPost.id))
        .where(
            GroupPost.group_id == group_id,
            GroupPost.subject_key == key,
            GroupPost.id != exclude,
            GroupPost.received_at >= now - SUBJECT_WINDOW,
        )
        .order_by(GroupPost.received_at.desc(), GroupPost.id.desc())
        .limit(1)
    )


def find_thread(
    session: Session, group_id: int, msg: Message, subject: str, *, now: datetime | None = None, exclude: int = 0
) -> int | None:
    """The thread (root post id) ``msg`` replies to in the group, or None for a new one
    (``exclude``: the post being placed, never its own parent)."""
    found = _by_reference(session, group_id, msg, exclude)
    if found is None and looks_like_reply(msg, subject):
        found = _by_subject(session, group_id, subject_key(subject), now or utcnow(), exclude)
    return found


def assign(session: Session, post: GroupPost, msg: Message, *, now: datetime | None = None) -> None:
    """Set ``post.subject_key`` and ``post.thread_id`` (the post must have been flushed:
    a new thread's id is its own)."""
    post.subject_key = subject_key(post.subject)
    found = find_thread(session, post.group_id, msg, post.subject, now=now, exclude=post.id)
    post.thread_id = found if found is not None else post.id
