"""One member's copy of a post: the author's message with the list's headers, a footer
with the member's own links, and (when the author's domain requires it) From rewritten.

The post's own header fields are kept byte for byte where they are kept at all (a
whitelist: addressing, subject, date, threading, MIME): encoded-words stay as the author
wrote them, and nothing the author set can pose as one of ours (no ``List-*``, ``X-Loop``,
``Sender``, ``Return-Path``, ``Received`` or DKIM signature passes). Threading headers
(``Message-ID``, ``In-Reply-To``, ``References``, Outlook's ``Thread-Index``) are kept,
so replies thread in every client.

The body is left as it is and wrapped, with the footer, in a ``multipart/mixed``: no
re-encoding of the author's MIME, whatever it holds. The shared part of a copy is built
once per post (:class:`PreparedPost`); per member only ``List-Unsubscribe`` and the
footer's links differ.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import format_datetime, parseaddr

from mailer.db import utcnow
from mailer.groups.links import GroupLinks
from mailer.groups.models import ANNOUNCE_ONLY, Group, GroupMember, GroupPost
from mailer.mail.message import Envelope, ascii_domain, encode_address, encode_subject, qp_fragment

# Fields of the author's header section that go out (lower-cased names); Content-* are
# moved into the wrapped part.
KEPT = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references", "reply-to")
KEPT_LOOSE = ("content-language", "thread-topic", "thread-index", "accept-language")
CONTENT = ("content-type", "content-transfer-encoding", "content-disposition", "content-description")


def header_fields(raw: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """The header section of ``raw`` as ``[(lower-cased name, whole field with CRLFs)]``
    and the body after the blank line."""
    data = raw.replace(b"\r\n", b"\n")
    end = data.find(b"\n\n")
    head, body = (data, b"") if end == -1 else (data[:end], data[end + 2 :])
    fields: list[tuple[str, bytes]] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            fields.append((line.split(b":", 1)[0].strip().lower().decode("ascii", "replace"), line))
    return fields, body.replace(b"\n", b"\r\n")


def _first(fields, name: str) -> bytes | None:
    return next((v for n, v in fields if n == name), None)


@dataclass(frozen=True)
class PreparedPost:
    """The bytes every member's copy of one post shares, and what the footer needs."""

    head: bytes  # every header line but List-Unsubscribe, CRLF-terminated
    inner: bytes  # the author's content headers, blank line and body
    boundary: str
    sender: str  # the group address: the copy's envelope sender for the relay
    slug: str
    group_name: str
    rewritten: bool
    post_id: int = 0


def prepare(
    post: GroupPost, group: Group, address: str, links: GroupLinks, *, rewrite_from: bool, list_domain: str
) -> PreparedPost:
    """The shared part of every copy of ``post`` (``address``: the group's)."""
    fields, body = header_fields(post.raw)
    out: list[bytes] = []
    seen: set[str] = set()
    author_name, author = post.author_name, post.author_email
    for name, value in fields:
        if name not in KEPT and name not in KEPT_LOOSE:
            continue
        if rewrite_from and name in ("from", "reply-to"):
            continue  # set below: the group's address, and the author to reply to
        if name in seen and name not in ("to", "cc"):
            continue  # one of each, whatever the author sent
        seen.add(name)
        out.append(value)
    if rewrite_from:
        shown = f"{author_name or author.partition('@')[0] or 'A sender'} via {group.name}"
        out.insert(0, f"From: {encode_address(shown, address, 'From')}".encode())
        original_reply_to = _first(fields, "reply-to")
        if original_reply_to is not None:
            out.append(original_reply_to)
        elif author:
            out.append(f"Reply-To: {encode_address(author_name, author, 'Reply-To')}".encode())
    if _first(fields, "message-id") is None and post.message_id:
        out.append(f"Message-ID: {post.message_id}".encode())
    if _first(fields, "subject") is None:
        out.append(b"Subject: (no subject)")
    if _first(fields, "date") is None:
        out.append(f"Date: {format_datetime(post.received_at or utcnow())}".encode())
    list_host = f"{group.slug}.{list_domain}"
    post_header = "NO" if group.posting_policy == ANNOUNCE_ONLY else f"<mailto:{ascii_domain(address)}>"
    out += [
        f"List-Id: {encode_subject(group.name, 'List-Id')} <{list_host}>".encode(),
        f"List-Post: {post_header}".encode(),
        f"List-Help: <{links.page(group.slug)}>".encode(),
        f"List-Archive: <{links.archive(group.slug)}>".encode(),
        f"Archived-At: <{links.post(group.slug, post.id)}>".encode(),
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        f"X-Loop: {ascii_domain(address)}".encode(),
        b"Precedence: list",
        b"MIME-Version: 1.0",
    ]
    boundary = "=_ertg_group_" + secrets.token_hex(12)
    out.append(f'Content-Type: multipart/mixed; boundary="{boundary}"'.encode())
    content = [v for n, v in fields if n in CONTENT]
    if not any(n == "content-type" for n, _ in fields):
        content.insert(0, b"Content-Type: text/plain; charset=us-ascii")
    inner = b"\r\n".join(content) + b"\r\n\r\n" + body
    return PreparedPost(
        head=b"\r\n".join(out) + b"\r\n",
        inner=inner,
        boundary=boundary,
        sender=address,
        slug=group.slug,
        group_name=group.name,
        rewritten=rewrite_from,
        post_id=post.id,
    )


def footer_text(group_name: str, leave_url: str, manage_url: str, page_url: str, web_url: str = "") -> str:
    return (
        f"You get this as a member of {group_name}.\r\n"
        + (f"View this thread and your group on the web: {web_url}\r\n" if web_url else "")
        + f"How you get its messages (every message, a daily digest, web only): {manage_url}\r\n"
        + f"Leave the group: {leave_url}\r\n"
        f"About the group: {page_url}\r\n"
    )


def copy_for(prepared: PreparedPost, member: GroupMember, links: GroupLinks) -> Envelope:
    """``member``'s copy: the shared bytes, their own List-Unsubscribe (the one-click link
    and the address that removes them when mailed) and footer."""
    leave = links.leave(member.id, member.token_version)
    mailto = links.leave_mailto(member.id, member.token_version)
    manage = links.manage(member.id, member.token_version)
    web = links.web(prepared.slug, member.id, member.token_version, prepared.post_id or None)
    footer = footer_text(prepared.group_name, leave, manage, links.page(prepared.slug), web)
    b = prepared.boundary.encode()
    data = b"".join(
        (
            prepared.head,
            f"List-Unsubscribe: <{leave}>, <mailto:{mailto}?subject=unsubscribe>\r\n".encode(),
            b"\r\nThis is a multipart message in MIME format.\r\n--",
            b,
            b"\r\n",
            prepared.inner,
            b"\r\n--",
            b,
            b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
            b"Content-Disposition: inline\r\n\r\n",
            qp_fragment(footer),
            b"\r\n--",
            b,
            b"--\r\n",
        )
    )
    return Envelope(prepared.sender, ascii_domain(member.email), data)


def decoded(value: str, limit: int = 300) -> str:
    """A header value with its RFC 2047 encoded-words decoded, on one line, at most
    ``limit`` characters; only the first 2,000 characters are read (encoded-word bombs)."""
    value = str(value)[:2000]
    try:
        text = str(make_header(decode_header(value)))
    except Exception:  # undecodable words: show them as they came
        text = value
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:limit]


_PLAIN = re.compile(r"^[^\s<>()\[\]\\,;:\"@]{1,64}@[^\s<>()\[\]\\,;:\"@]{1,255}$")


def author_of(from_value: str) -> tuple[str, str]:
    """(display name, address) of a ``From:`` value, the name decoded and on one line; the
    address is "" unless it is a plain ``local@domain`` (a stranger's odd syntax then
    makes the post a non-member's, held, never a header we would write)."""
    name, address = parseaddr(str(from_value)[:2000])
    address = address.strip()
    return decoded(name, 200), address if _PLAIN.match(address) else ""
