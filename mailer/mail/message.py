"""The one place that writes MIME: every email the service sends is built here.

Headers that are the same for every recipient of a mailing are encoded once in
:class:`MessageTemplate`; per recipient only the address, Message-ID, Date, the unsubscribe
header and the two encoded bodies are added. Output is ``bytes`` ready for SMTP (CRLF).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime, parseaddr

_CRLF = b"\r\n"


class _MessageIds:
    """Left parts of Message-IDs: unique, not secret. A random prefix drawn once per
    process (and again in a forked child, which would otherwise repeat its parent's) and
    a counter. ``secrets.token_hex`` per message, a system call each, was 2 % of composing
    a digest (bench.compose)."""

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_hex(10)
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}.{next(self._count):x}"


_message_ids = _MessageIds()


class HeaderInjection(ValueError):
    """A header value held CR or LF; refusing it keeps recipients from forging headers."""


def _check(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection("header values must not contain line breaks")
    return value


# RFC 2047: an encoded-word is at most 75 characters; "=?utf-8?b?" and "?=" take 12, so
# 63 are left for base64, i.e. at most 45 bytes of UTF-8 (60 base64 characters) per word.
_WORD_BYTES = 45
# Characters that make a display name need quoting (RFC 5322 "specials").
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def encode_words(text: str, header_name: str = "Subject") -> str:
    """``text`` as RFC 2047 base64 encoded-words of at most 75 characters each, folded one
    word per line so that with ``header_name: `` in front no line passes 78 characters.

    Words never split a character, so each decodes on its own (RFC 2047 section 5).
    """
    first_room = (78 - len(header_name) - 2 - 12) // 4 * 3  # bytes that fit the first line
    words, chunk, limit = [], b"", min(_WORD_BYTES, max(first_room, 3))
    for ch in text:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > limit:
            words.append(chunk)
            chunk, limit = b"", _WORD_BYTES
        chunk += b
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words if w)


def ascii_domain(address: str) -> str:
    """``address`` with an internationalised domain in its IDNA (``xn--``) form; the local
    part is left as it is (a non-ASCII one needs SMTPUTF8, RFC 6531)."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def encode_address(name: str, address: str, header_name: str = "To") -> str:
    """``Name <local@domain>``: RFC 2047 for a non-ASCII name, IDNA for a non-ASCII domain.

    A non-ASCII local part stays UTF-8 (RFC 6532); the relay must then offer SMTPUTF8,
    which the transport checks (see :mod:`mailer.mail.transport`).
    """
    _check(name)
    _check(address)
    address = ascii_domain(address)
    if not name:
        return address
    if not name.isascii():
        name = encode_words(name, header_name)
    elif _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def encode_subject(subject: str, header_name: str = "Subject") -> str:
    """RFC 2047 for a non-ASCII value (encoded-words of at most 75 characters), folded so
    that with ``header_name: `` in front no line passes 78 characters."""
    _check(subject)
    if subject.isascii():
        return subject
    return encode_words(subject, header_name)


_qp_shared: dict[bytes, bytes] = {}  # lines seen in two or more messages
_qp_once: dict[bytes, bytes] = {}  # lines seen once so far (most are personal)


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, through the C codec.

    Quoted-printable encodes each hard line on its own, so a body is the CRLF-join of
    its encoded lines. Digests of one edition share almost all their lines (only those
    holding a name, an address or a link differ), so encoded lines are remembered: a
    100 KB body then costs a split and dictionary lookups instead of ~1 ms of encoding.
    A line is kept for good only when a second message uses it, so personal lines (new
    in every message) never crowd out the shared ones.
    """
    data = text.replace("\r\n", "\n").encode("utf-8")
    shared, once = _qp_shared, _qp_once
    if len(once) > 20_000:
        once.clear()
    if len(shared) > 50_000:
        shared.clear()  # several editions' worth: start afresh
    lines = data.split(b"\n")
    out = list(map(shared.get, lines))  # C-speed lookups; misses are few
    i = 0
    while True:
        try:
            i = out.index(None, i)
        except ValueError:
            break
        line = lines[i]
        enc = once.pop(line, None)
        if enc is not None:
            shared[line] = enc  # second sighting: a shared line
        else:
            # Encoded with its line end, as inside a whole body, then without it.
            enc = _undotted(binascii.b2a_qp(line + b"\n", istext=True)[:-1]).replace(b"\n", _CRLF)
            once[line] = enc
        out[i] = enc
        i += 1
    return _CRLF.join(out)


def qp_fragment(text: str) -> bytes:
    """Quoted-printable for a *piece* of a body, safe to concatenate with other pieces.

    Every fragment ends with a line break: the text's own (hard) or a soft one (``=``),
    and no line exceeds 76 characters. So fragments encoded once per edition and
    fragments encoded per recipient can be joined into one valid body with no re-encoding.
    """
    if text.isascii() and text.isprintable() and "=" not in text and not text.endswith(" ") and "." not in text[::75]:
        # The common per-recipient case (links, plain names): nothing to escape, so only
        # cut into lines. ~10x faster than the general path below.
        return b"".join([text[i : i + 75].encode("ascii") + b"=\r\n" for i in range(0, len(text), 75)])
    data = text.replace("\r\n", "\n").encode("utf-8")
    enc = binascii.b2a_qp(data, istext=True)
    if enc and not enc.endswith(b"\n"):
        start = enc.rfind(b"\n") + 1
        if len(enc) - start > 75:  # no room for the soft break on the last line: split it
            cut = start + 72
            while enc[cut - 1 : cut] == b"=" or enc[cut - 2 : cut - 1] == b"=":
                cut -= 1  # never split an =XX escape
            enc = enc[:cut] + b"=\n" + enc[cut:]
        enc += b"=\n"
    return _undotted(enc).replace(b"\n", _CRLF)


def _undotted(enc: bytes) -> bytes:
    """Quoted-printable lines (``\\n`` ends) with a leading ``.`` written ``=2E``.

    A line starting with a dot must be doubled on the wire (SMTP's end of data is a lone
    dot), and a digest has dozens (its CSS rules, long links cut after a dot): without
    them the transport's dot-stuffing, a copy of the whole message, is skipped."""
    if not (enc.startswith(b".") or b"\n." in enc):
        return enc
    out: list[bytes] = []
    for line in enc.split(b"\n"):
        while line.startswith(b"."):
            if len(line) <= 74:
                line = b"=2E" + line[1:]
                break
            # No room for two more characters: "=2E", 72 characters and a soft break;
            # the rest (which may start with a dot again) goes on the next line.
            cut = 73
            while line[cut - 1 : cut] == b"=" or line[cut - 2 : cut - 1] == b"=":
                cut -= 1  # never split an =XX escape
            out.append(b"=2E" + line[1:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return b"\n".join(out)


@dataclass(frozen=True)
class Envelope:
    """What the transport needs besides the bytes: who the message is from and for.

    ``dot_free``: no line of ``data`` starts with a dot, so SMTP's dot-stuffing has nothing
    to do and the transport need not scan the message for one (a scan of a 32 KB digest
    was 8 % of a sending worker's CPU). Only :meth:`MessageTemplate.build_encoded` sets
    it: its headers start with a field name or fold with a space, and quoted-printable
    made by :func:`qp_fragment` and :func:`_qp` writes a leading dot ``=2E``."""

    sender: str
    recipient: str
    data: bytes
    dot_free: bool = False

    @property
    def smtputf8(self) -> bool:
        """True when the recipient's address has a non-ASCII local part: the relay must
        then offer SMTPUTF8 (RFC 6531), since neither envelope nor header can be ASCII."""
        return not self.recipient.isascii()


class MessageTemplate:
    """The parts of a mailing that every recipient shares, encoded once.

    ``list_unsubscribe_mailto`` turns on the RFC 2369/8058 headers (digests) and is their
    mailto unless a recipient's own is given to :meth:`build_encoded`; transactional
    emails such as confirmations leave it off. ``auto_submitted`` marks a message sent by
    a machine in answer to something (RFC 3834: confirmations, links, partner notices), so
    auto-responders stay quiet. ``reply_to`` sends replies to the editors rather than the
    sending address; ``feedback_id`` (digests: one per edition) lets mailbox providers
    report complaints per mailing.
    """

    def __init__(
        self,
        *,
        mail_from: str,
        subject: str,
        list_id: str | None = None,
        list_name: str = "",
        list_unsubscribe_mailto: str | None = None,
        auto_submitted: bool = False,
        reply_to: str | None = None,
        feedback_id: str | None = None,
    ):
        name, address = parseaddr(mail_from)
        self.sender = address
        self.domain = address.rpartition("@")[2] or "localhost"
        self.mailto = list_unsubscribe_mailto
        # A boundary holding "=_" can never occur inside quoted-printable text.
        self.boundary = "=_ertg_" + secrets.token_hex(12)
        lines = [
            f"From: {encode_address(name, address, 'From')}",
            f"Subject: {encode_subject(subject)}",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
        ]
        if reply_to:
            rname, raddress = parseaddr(_check(reply_to))
            lines.append(f"Reply-To: {encode_address(rname, raddress, 'Reply-To')}")
        if auto_submitted:
            lines.append("Auto-Submitted: auto-generated")
        if feedback_id:
            lines.append(f"Feedback-ID: {_check(feedback_id)}")
        if list_id:
            label = f"{encode_subject(list_name, 'List-Id')} " if list_name else ""
            lines.append(f"List-Id: {label}<{_check(list_id)}>")
        if list_unsubscribe_mailto:
            lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        self._shared = ("\r\n".join(lines) + "\r\n").encode("utf-8")
        b = self.boundary.encode()
        self._text_head = (
            b"\r\n--" + b + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._html_head = (
            b"\r\n--" + b + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._end = b"\r\n--" + b + b"--\r\n"
        self._date_second, self._date_value = -1, ""

    def build(
        self,
        *,
        to_name: str,
        to_address: str,
        text: str,
        html: str,
        unsubscribe_url: str | None = None,
        unsubscribe_mailto: str | None = None,
    ) -> Envelope:
        """The complete message for one recipient."""
        return self.build_encoded(
            to_name=to_name,
            to_address=to_address,
            text_qp=[_qp(text)],
            html_qp=[_qp(html)],
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=unsubscribe_mailto,
        )

    def _date(self) -> str:
        # Formatting costs a few microseconds; one value per second serves every message.
        # A numeric zone (+0000): "GMT" is obsolete syntax and -0000 means "zone unknown".
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_value = format_datetime(datetime.fromtimestamp(now, timezone.utc))
        return self._date_value

    def build_encoded(
        self,
        *,
        to_name: str,
        to_address: str,
        text_qp: list[bytes],
        html_qp: list[bytes],
        unsubscribe_url: str | None = None,
        unsubscribe_mailto: str | None = None,
    ) -> Envelope:
        """The complete message for one recipient from bodies already quoted-printable
        encoded with CRLF line ends (see :func:`qp_fragment`), each as the list of its pieces
        (joined here with the rest of the message, in one copy).
        ``unsubscribe_mailto`` is the recipient's own unsubscribe address
        (``unsubscribe+TOKEN@``), so a mail to it unsubscribes exactly them."""
        head = [
            f"To: {encode_address(to_name, to_address)}",
            f"Date: {self._date()}",
            f"Message-ID: <{_message_ids.next()}@{self.domain}>",
        ]
        if unsubscribe_url:
            if self.mailto is None:
                raise ValueError("this mailing has no List-Unsubscribe mailto configured")
            mailto = _check(unsubscribe_mailto or self.mailto)
            # One line of up to 998 octets: folding or RFC 2047 here breaks one-click clients.
            head.append(f"List-Unsubscribe: <{_check(unsubscribe_url)}>, <mailto:{mailto}?subject=unsubscribe>")
        data = b"".join(
            [
                self._shared,
                ("\r\n".join(head) + "\r\n").encode("utf-8"),
                b"\r\nThis is a multipart message in MIME format.\r\n",
                self._text_head,
                *text_qp,
                self._html_head,
                *html_qp,
                self._end,
            ]
        )
        return Envelope(self.sender, ascii_domain(to_address), data, dot_free=True)
