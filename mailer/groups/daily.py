"""A group's daily digest: one email a day to the members who chose it, listing the day's
threads (subject, authors by name, number of messages, each message's own text with the
quoted text trimmed, a link to the thread in the archive).

A day is a calendar day in ``SCHEDULE_TIMEZONE``; a post belongs to the day it was
approved (when it went to every-message members), so a post a moderator approved the
next morning is in the next day's digest, never in none. :func:`open_digest` makes the
day's :class:`GroupDigest` row once (unique per group and day); its deliveries are rows
of the group delivery ledger (:func:`mailer.groups.sending.fan_out_digest`), so nobody
gets a day's digest twice whoever runs the job and however often.

Rendered once per group and day (:func:`prepare_digest`: Jinja2, MJML and the inliner
once, through :func:`mailer.digest.render.render_once`); per member only the greeting,
address and their links are filled in (:func:`copy_for`). Subjects, names and message
text are data: escaped in HTML, and never able to act as a placeholder.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.digest.render import RenderedOnce, fill_once, render_once
from mailer.groups.bodies import split_quoted
from mailer.groups.links import GroupLinks
from mailer.groups.models import ACTIVE, APPROVED, DIGEST, Group, GroupDigest, GroupMember, GroupPost
from mailer.groups.posting import excerpt
from mailer.mail.message import Envelope, MessageTemplate
from mailer.settings import Settings

PERSONAL = ("GREETING", "EMAIL", "MANAGE_URL", "LEAVE_URL")
MESSAGE_CHARS = 1500  # of each message's own text; the rest is a click away
MESSAGES_SHOWN = 100  # per digest: a flood of a day stays an email, not a book
# Characters of message text in one digest: beyond it, messages are named with a link, so
# the HTML stays under Gmail's 102 KB clipping size.
TEXT_BUDGET = 20_000
ON_THE_WEB = ("(Read this message on the web: the digest is full.)",)
# Every thread costs markup besides its text: past this many shown in full, the rest of
# the day's threads are listed with their links only.
THREADS_IN_FULL = 40


@dataclass(frozen=True)
class DayMessage:
    author: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class DayThread:
    root_id: int
    subject: str
    url: str
    authors: tuple[str, ...]
    count: int
    messages: tuple[DayMessage, ...]  # empty: listed only (the digest was full), read on the web


def day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants a local calendar ``day`` starts and ends."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def groups_with_posts(session: Session, start: datetime, end: datetime) -> list[int]:
    """Groups with posts approved in [start, end) and at least one daily-digest member."""
    has_digest_member = (
        select(GroupMember.id)
        .where(GroupMember.group_id == GroupPost.group_id, GroupMember.status == ACTIVE, GroupMember.delivery == DIGEST)
        .exists()
    )
    return list(
        session.scalars(
            select(GroupPost.group_id)
            .where(GroupPost.status == APPROVED, GroupPost.decided_at >= start, GroupPost.decided_at < end)
            .where(has_digest_member)
            .distinct()
            .order_by(GroupPost.group_id)
        )
    )


def open_digest(session: Session, group_id: int, day: date) -> GroupDigest:
    """The group's digest row for ``day``, made if missing (two makers at once: one wins,
    the other finds it)."""
    query = select(GroupDigest).where(GroupDigest.group_id == group_id, GroupDigest.day == day)
    found = session.scalar(query)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            digest = GroupDigest(group_id=group_id, day=day)
            session.add(digest)
    except IntegrityError:
        return session.scalar(query)
    return digest


# --- the day's threads ---------------------------------------------------------------------

_ON_WROTE = re.compile(r"^on\b.{0,300}\bwrote:?$", re.I)
_SEPARATORS = re.compile(r"^(-{2,}\s*original message\s*-{2,}|_{20,}|-{5,}\s*forwarded message\s*-{5,})$", re.I)
_HEADERISH = re.compile(r"^(from|sent|date|to|subject):\s", re.I)


def trim_quoted(text: str) -> str:
    """A message's own words: quoted lines (``>``) left out, and everything from a reply
    attribution ("On ... wrote:", Outlook's "From: ... Sent: ..." block, "Original
    Message") on, which is the message being answered."""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(">"):
            continue
        joined = f"{s} {lines[i + 1].strip()}" if i + 1 < len(lines) else s
        if _SEPARATORS.match(s) or _ON_WROTE.match(s) or (s.lower().startswith("on ") and _ON_WROTE.match(joined)):
            break
        if _HEADERISH.match(s) and sum(1 for n in lines[i : i + 5] if _HEADERISH.match(n.strip())) >= 3:
            break  # Outlook's quoted header block
        out.append(line.rstrip())
    text = "\n".join(out).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


def _message_lines(post: GroupPost) -> tuple[str, ...]:
    # The archive's text of the post (addresses masked, emptied by erasure) with the archive's
    # quote split; trim_quoted then catches the quoting styles the parser leaves in.
    own = split_quoted(post.body_text).new if post.body_text else excerpt(post, MESSAGE_CHARS * 3)
    text = trim_quoted(own[: MESSAGE_CHARS * 3])
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS].rsplit(" ", 1)[0] + " [...]"
    return tuple(text.split("\n")) if text else ("(no text)",)


def approved_between(group: Group, start: datetime, end: datetime):
    """The conditions of ``group``'s posts approved in [start, end) (a day here; the month
    of an edition in :mod:`.network`)."""
    return (
        GroupPost.group_id == group.id,
        GroupPost.status == APPROVED,
        GroupPost.decided_at >= start,
        GroupPost.decided_at < end,
    )


def day_threads(session: Session, group: Group, start: datetime, end: datetime, links: GroupLinks) -> list[DayThread]:
    """The threads with posts approved in [start, end), in the order they started that
    day; each with that day's messages in order (the first :data:`MESSAGES_SHOWN`)."""
    posts = list(
        session.scalars(
            select(GroupPost)
            .where(*approved_between(group, start, end))
            .order_by(GroupPost.decided_at, GroupPost.id)
            .limit(MESSAGES_SHOWN)
        )
    )
    names = dict(
        session.execute(
            select(GroupMember.email_key, GroupMember.name).where(
                GroupMember.group_id == group.id,
                GroupMember.email_key.in_({p.author_email.lower() for p in posts if p.author_email}),
            )
        ).all()
    )
    by_root: dict[int, list[GroupPost]] = {}
    for post in posts:
        by_root.setdefault(post.thread_id or post.id, []).append(post)
    threads, budget = [], TEXT_BUDGET
    for root_id, members in by_root.items():
        # The thread's subject is its first post's (replies' "Re:" lines vary).
        root = members[0] if members[0].id == root_id else session.get(GroupPost, root_id)
        subject = (root.subject if root is not None else "") or members[0].subject or "(no subject)"
        shown = []
        full = budget > 0 and len(threads) < THREADS_IN_FULL
        for p in members if full else ():
            lines = _message_lines(p) if budget > 0 else ON_THE_WEB
            budget -= sum(len(line) for line in lines)
            shown.append(DayMessage(_author(p, names), lines))
        messages = tuple(shown)
        authors = tuple(dict.fromkeys(_author(p, names) for p in members))
        threads.append(DayThread(root_id, subject, links.thread(group.slug, root_id), authors, len(members), messages))
    return threads


def _author(post: GroupPost, names: dict[str, str]) -> str:
    """A poster by name: never their address (a digest is forwarded and quoted)."""
    name = post.author_name or names.get(post.author_email.lower(), "")
    return name if name and "@" not in name else "A member"


# --- render once, personalise per member -----------------------------------------------------


@dataclass(frozen=True)
class PreparedDigest:
    digest_id: int
    rendered: RenderedOnce
    template: MessageTemplate


def day_label(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def prepare_digest(session: Session, digest: GroupDigest, settings: Settings, links: GroupLinks):
    """The day's digest rendered once, or None when the day has no threads left."""
    group = digest.group
    start, end = day_window(digest.day, settings.schedule_timezone)
    threads = day_threads(session, group, start, end, links)
    if not threads:
        return None
    messages = session.scalar(select(func.count(GroupPost.id)).where(*approved_between(group, start, end))) or 0
    label = day_label(digest.day)
    subject = (
        f"[{group.name}] Daily digest, {label}: "
        f"{len(threads)} topic{'s' * (len(threads) != 1)}, {messages} message{'s' * (messages != 1)}"
    )
    context = {
        "subject": subject,
        "preheader": ", ".join(t.subject for t in threads)[:120],
        "group_name": group.name,
        "day_label": label,
        "threads": threads,
        "messages": messages,
        "more": messages - sum(t.count for t in threads),
        "group_url": links.page(group.slug),
        "archive_url": links.archive(group.slug),
        "postal_address": settings.postal_address,
        "sender_name": "End Racism This Generation",
        "heading": f"{group.name}: {label}",
        "view_online": False,
    }
    template = MessageTemplate(
        mail_from=settings.mail_from,
        subject=subject,
        list_id=f"{group.slug}.{settings.list_domain}",
        list_name=group.name,
        list_unsubscribe_mailto=settings.unsubscribe_mailto,
    )
    return PreparedDigest(digest.id, render_once("group_digest", context, PERSONAL), template)


class PreparedDigests:
    """Each day's digest rendered once per process: every batch of its deliveries, on any
    worker thread, shares one render (thread-safe, the least recently used dropped past
    ``maxsize``). Keyed by the digest row (its id and when it was made, so a recreated
    database never meets an old render) and the settings the render reads."""

    def __init__(self, maxsize: int = 16):
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple, PreparedDigest | None] = OrderedDict()
        self._lock = threading.Lock()  # held while rendering: one render, not one per thread

    def get(self, session: Session, digest: GroupDigest, settings: Settings, links: GroupLinks):
        key = (
            digest.id,
            digest.group_id,
            digest.day,
            digest.created_at,
            settings.base_url,
            settings.secret_key,
            settings.mail_from,
            settings.postal_address,
            settings.unsubscribe_mailto,
            settings.list_domain,
            settings.schedule_timezone,
        )
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            prepared = prepare_digest(session, digest, settings, links)
            self._entries[key] = prepared
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
            return prepared


prepared_digests = PreparedDigests()


def personal_values(member: GroupMember, links: GroupLinks) -> dict[str, str]:
    return {
        "GREETING": f" {member.name}" if member.name else "",
        "EMAIL": member.email,
        "MANAGE_URL": links.manage(member.id, member.token_version),
        "LEAVE_URL": links.leave(member.id, member.token_version),
    }


def copy_for(prepared: PreparedDigest, member: GroupMember, links: GroupLinks) -> Envelope:
    """``member``'s copy: their greeting, address and links in the shared render, and
    their own ``List-Unsubscribe`` (one-click leave and the leave address)."""
    values = personal_values(member, links)
    html, text = fill_once(prepared.rendered, values)
    return prepared.template.build_encoded(
        to_name=member.name,
        to_address=member.email,
        text_qp=text,
        html_qp=html,
        unsubscribe_url=values["LEAVE_URL"],
        unsubscribe_mailto=links.leave_mailto(member.id, member.token_version),
    )


def digests_of_day(session: Session, day: date) -> list[int]:
    """The ids of the digest rows made for ``day`` (to enqueue their pending deliveries)."""
    return list(session.scalars(select(GroupDigest.id).where(GroupDigest.day == day).order_by(GroupDigest.id)))
