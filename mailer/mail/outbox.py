"""Reading the file outbox (embedded mode): the messages :class:`FileOutbox` wrote.

For the console's outbox viewer, so a new user sees what the service sends without a
mail server. Only names :class:`~mailer.mail.transport.FileOutbox` makes are read
(``<32 hex digits>.eml``): a name from a URL can never reach outside the directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

from mailer.paging import Paged, clamp

NAME = re.compile(r"[0-9a-f]{32}\.eml")


@dataclass(frozen=True)
class Entry:
    name: str
    written_at: datetime
    size: int
    subject: str = ""
    to: str = ""


@dataclass(frozen=True)
class OutboxPage(Paged):
    entries: list[Entry]
    total: int
    page: int
    per_page: int


def list_messages(directory: Path, *, page: int = 1, per_page: int = 50) -> OutboxPage:
    """The messages in ``directory``, newest first, one page of them."""
    entries = []
    if Path(directory).is_dir():
        for path in Path(directory).iterdir():
            if NAME.fullmatch(path.name):
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed while we looked
                    continue
                entries.append(Entry(path.name, datetime.fromtimestamp(st.st_mtime, timezone.utc), st.st_size))
    entries.sort(key=lambda e: (e.written_at, e.name), reverse=True)
    total = len(entries)
    page = clamp(page, total, per_page)
    shown = [_with_headers(Path(directory), e) for e in entries[(page - 1) * per_page : page * per_page]]
    return OutboxPage(shown, total, page, per_page)


def _with_headers(directory: Path, entry: Entry) -> Entry:
    """``entry`` with its subject and recipient (only this page's files are opened)."""
    try:
        with (directory / entry.name).open("rb") as fh:
            headers = BytesHeaderParser(policy=policy.default).parse(fh)
    except FileNotFoundError:
        return entry
    return Entry(entry.name, entry.written_at, entry.size, str(headers.get("Subject", "")), str(headers.get("To", "")))


@dataclass(frozen=True)
class Message:
    name: str
    headers: list[tuple[str, str]]
    subject: str
    sender: str
    to: str
    date: str
    text: str | None
    html: str | None


def read_message(directory: Path, name: str) -> Message | None:
    """The message ``name`` parsed, or None if there is no such message (or the name is
    not one the outbox makes)."""
    if not NAME.fullmatch(name or ""):
        return None
    path = Path(directory) / name
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    msg: EmailMessage = message_from_bytes(raw, policy=policy.default)
    text = html = None
    plain_part = msg.get_body(("plain",))
    html_part = msg.get_body(("html",))
    if plain_part is not None:
        text = plain_part.get_content()
    if html_part is not None:
        html = html_part.get_content()
    return Message(
        name=name,
        headers=[(k, str(v)) for k, v in msg.items()],
        subject=str(msg.get("Subject", "")),
        sender=str(msg.get("From", "")),
        to=str(msg.get("To", "")),
        date=str(msg.get("Date", "")),
        text=text,
        html=html,
    )


def remove_messages_to(directory: Path, address: str) -> int:
    """Delete every outbox email that holds ``address`` (as recipient, sender or anywhere
    in the message, ignoring case), for an erasure. How many were deleted."""
    needle = address.strip().lower().encode()
    removed = 0
    if not needle or not Path(directory).is_dir():
        return 0
    for path in Path(directory).iterdir():
        if not NAME.fullmatch(path.name):
            continue
        try:
            if needle in path.read_bytes().lower():
                path.unlink()
                removed += 1
        except FileNotFoundError:  # removed while we looked
            continue
    return removed
