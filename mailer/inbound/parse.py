"""Is a received message well-formed enough to accept, and was it sent by a machine?

Everything that arrives is hostile data. :func:`parse` refuses (with :class:`Malformed`,
which the receiver answers with 501) a message whose header section is not a header
section: a line that is neither a field nor a continuation, a NUL byte, a field name
outside printable ASCII, no ``From:``, a header section over :data:`MAX_HEADER_BYTES`, or
MIME parts nested deeper than the parser can follow.
The body is not judged here: each route's handler reads what it needs.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import Message

from mailer.mail.automatic import automatic  # noqa: F401  (re-exported: the routes read it here)

MAX_HEADER_BYTES = 256 * 1024  # far beyond any honest header section; bounds parsing work
_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")  # a field name is printable ASCII without ':'


class Malformed(ValueError):
    """The message cannot be accepted as it is; the text is safe to put in an SMTP reply."""


def _header_section(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[:end]
    return raw  # a message may be all header


def parse(raw: bytes) -> Message:
    """``raw`` as a message (``email`` compat32, as the bounce code reads it), or
    :class:`Malformed` saying what is wrong with it."""
    head = _header_section(raw)
    if len(head) > MAX_HEADER_BYTES:
        raise Malformed("header section too large")
    if b"\0" in head:
        raise Malformed("NUL byte in the header section")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    if not lines or not lines[0] or not _FIELD.match(lines[0]):
        raise Malformed("the message does not start with a header field")
    for number, line in enumerate(lines[1:], start=2):
        if line[:1] not in (b" ", b"\t") and not _FIELD.match(line):
            raise Malformed(f"header line {number} is neither a field nor a continuation")
    try:
        msg = message_from_bytes(raw, policy=policy.compat32)
    except RecursionError:  # multiparts nested thousands deep: the parser recurses per level
        raise Malformed("MIME parts nested too deeply") from None
    if not msg.get("From"):
        raise Malformed("no From header field")
    return msg
