"""What the archive keeps of a message: its text, its attachments, and its quoted part.

Contract (everything here treats the message as hostile data):

* :func:`plain_text` is the message's first ``text/plain`` part that is not an
  attachment, decoded with its declared charset (an unknown or lying charset falls back to
  UTF-8 with replacement characters); without one, the first ``text/html`` part turned
  into text (tags dropped, ``script``/``style`` contents dropped, entities decoded). Sender
  HTML is never kept as markup. Control characters go; at most :data:`MAX_TEXT` characters.
* :func:`mask_addresses` replaces every email address in a text with
  :data:`HIDDEN`: the archive never shows an address to anyone.
* :func:`split_quoted` separates the new text of a reply from what it quotes
  (mail-parser-reply: "On ... wrote:", Outlook's "From: / Sent:" blocks, "> " lines).
* :func:`attachments` lists a message's files (decoded, with a safe file name).

Nothing here reads the database or settings.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser

from mailer.groups.copies import decoded

MAX_TEXT = 200_000  # characters of a post's text the archive keeps
MAX_PARTS = 200  # MIME parts walked (a bomb of nested parts stops here)
MAX_ATTACHMENTS = 20
HIDDEN = "[address hidden]"
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+", re.UNICODE)
_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr"}
_SKIP = {"script", "style", "head", "title", "template", "noscript"}
_REPLY_LANGUAGES = ["en", "de", "fr", "nl", "sv", "it", "es", "pl"]


def _printable(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)


def _decode(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except (LookupError, ValueError):  # a charset Python does not know
        return payload.decode("utf-8", "replace")


class _Text(HTMLParser):
    """HTML to text: the text nodes, a line break per block element, nothing else."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    """The text of an HTML document: no tags, no script or style contents."""
    parser = _Text()
    try:
        parser.feed(markup[: MAX_TEXT * 4])
        parser.close()
    except Exception:  # HTMLParser copes with nearly anything; if not, keep no markup at all
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    text = "".join(parser.out)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or bool(part.get_filename())


def _parts(msg: Message):
    for n, part in enumerate(msg.walk()):
        if n >= MAX_PARTS:
            return
        yield part


def parse(raw: bytes) -> Message:
    return message_from_bytes(raw, policy=policy.compat32)


def plain_text(msg: Message) -> str:
    """The message's text as described in the module's contract ("" when it has none)."""
    html_part = None
    for part in _parts(msg):
        if part.is_multipart() or _is_attachment(part):
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            return _printable(_decode(part))[:MAX_TEXT].strip("\n")
        if kind == "text/html" and html_part is None:
            html_part = part
    if html_part is not None:
        return _printable(html_to_text(_decode(html_part)))[:MAX_TEXT]
    return ""


def mask_addresses(text: str) -> str:
    return _ADDRESS.sub(HIDDEN, text)


@dataclass(frozen=True)
class Split:
    new: str  # what the author wrote
    quoted: str  # what they quoted ("" when nothing)


def split_quoted(text: str) -> Split:
    """The new text and the quoted rest of a reply (all of it new if the split fails)."""
    try:
        replies = EmailReplyParser(languages=_REPLY_LANGUAGES).read(text).replies
    except Exception:  # a text the parser's patterns choke on: show it all, unfolded
        return Split(text.strip(), "")
    if len(replies) < 2 or not (replies[0].content or "").strip():
        return Split(text.strip(), "")
    quoted = "\n\n".join(r.content for r in replies[1:] if r.content)
    return Split(replies[0].content.strip(), quoted.strip())


@dataclass(frozen=True)
class File:
    filename: str
    content_type: str
    data: bytes


_UNSAFE = re.compile(r"[^\w .()+-]", re.UNICODE)


def safe_filename(name: str | None, default: str = "attachment") -> str:
    """A file name that is only a name: no path, no control or shell characters, no
    leading dot, at most 100 characters (the extension kept)."""
    name = decoded(name or "", 400).replace("\\", "/").rsplit("/", 1)[-1]
    name = " ".join(_UNSAFE.sub("_", name).split()).lstrip(".-")
    if len(name) > 100:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 95 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else name[:100]
    return name or default


def attachments(msg: Message) -> list[File]:
    """The message's files: parts marked as attachments or named, and non-text parts."""
    found: list[File] = []
    for part in _parts(msg):
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        inline_text = kind in ("text/plain", "text/html") and not _is_attachment(part)
        if inline_text or kind.startswith("multipart/") or kind == "message/rfc822":
            continue
        data = part.get_payload(decode=True) or b""
        found.append(File(safe_filename(part.get_filename()), kind[:100], data))
        if len(found) >= MAX_ATTACHMENTS:
            break
    return found
