"""Bounce (DSN, RFC 3464) and complaint (ARF, RFC 5965) reports: read, match, apply.

Reports are matched through the per-recipient return path (VERP) they were sent to, or,
for complaints, the return path inside the original message they quote: a digest
delivery, a subscriber's confirmation or link email, a partner notice, or a one-off
(test send) whose return path is bound to its recipient address (see
:mod:`mailer.mail.verp`). A report that names no genuine return path of ours is
counted as unmatched and changes nothing: anyone can send mail to the bounce mailbox, and
a forged report must not be able to suppress somebody's address.

Hard bounces and complaints put the address on the suppression list (complaints also
unsubscribe the person); soft bounces are logged and counted.
"""

from __future__ import annotations

import mailbox
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email import message_from_binary_file, message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from mailer.content.models import Item
from mailer.delivery.models import BOUNCED, SENT, UNKNOWN, Delivery
from mailer.delivery.suppression import COMPLAINT, HARD, SOFT, log_bounce, suppress
from mailer.mail.verp import ADDRESS, DELIVERY, NOTICE, SUBSCRIBER, ReturnPaths, Target
from subscribers.models import Subscriber
from subscribers.service import unsubscribe

# Headers a receiving system may use to say which address a report was delivered to.
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


@dataclass(frozen=True)
class Report:
    kind: str  # hard, soft or complaint
    target: Target | None  # what the return path names; None: unmatched
    recipient: str  # the address the report is about ("" if not stated)
    detail: str

    @property
    def delivery_id(self) -> int | None:
        return self.target.id if self.target is not None and self.target.kind == DELIVERY else None


def _address(field_value: str | None) -> str:
    """``rfc822; someone@example.org`` -> ``someone@example.org``."""
    if not field_value:
        return ""
    value = str(field_value).partition(";")[2] or str(field_value)
    return value.strip().strip("<>").lower()


def _target_from_headers(msg: Message, paths: ReturnPaths, names: Iterable[str]) -> Target | None:
    for name in names:
        for value in msg.get_all(name, []):
            for _, addr in getaddresses([str(value)]):
                found = paths.target(addr)
                if found is not None:
                    return found
    return None


def _bound(paths: ReturnPaths, target: Target | None, *recipients: str) -> Target | None:
    """``target``, unless it is a return path bound to an address other than the report's."""
    if target is None or target.kind != ADDRESS:
        return target
    return target if any(paths.covers(target, r) for r in recipients if r) else None


def _embedded_original(report: Message) -> Message | None:
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            return payload[0] if isinstance(payload, list) else payload
        if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            return message_from_bytes(part.get_payload(decode=True) or b"", policy=policy.compat32)
    return None


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    # Some parsers leave the body as text: split the header blocks ourselves.
    text = payload if isinstance(payload, str) else ""
    return [message_from_bytes(b.encode(), policy=policy.compat32) for b in text.split("\n\n") if b.strip()]


def parse(msg: Message, paths: ReturnPaths) -> list[Report]:
    """The reports in one received message (none if it is neither a DSN nor an ARF report)."""
    if msg.get_content_type() != "multipart/report":
        return []
    report_type = (msg.get_param("report-type") or "").lower()
    out: list[Report] = []
    if report_type == "delivery-status":
        found = _target_from_headers(msg, paths, _ENVELOPE_HEADERS)
        for part in msg.walk():
            if part.get_content_type() != "message/delivery-status":
                continue
            for block in _status_blocks(part)[1:]:  # the first block is per-message
                action = str(block.get("Action", "")).strip().lower()
                status = str(block.get("Status", "")).strip()
                recipient = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
                delivery = _bound(paths, found, recipient, _address(block.get("Original-Recipient")))
                detail = f"{status} {block.get('Diagnostic-Code', '')}".strip()
                if action == "failed" and status.startswith("5"):
                    out.append(Report(HARD, delivery, recipient, detail))
                elif action in ("failed", "delayed") and status.startswith("4"):
                    out.append(Report(SOFT, delivery, recipient, detail))
                elif action == "delayed":
                    out.append(Report(SOFT, delivery, recipient, detail))
    elif report_type == "feedback-report":
        original = _embedded_original(msg)
        delivery = _target_from_headers(msg, paths, _ENVELOPE_HEADERS)
        if delivery is None and original is not None:
            delivery = _target_from_headers(original, paths, ("Return-Path", "Sender"))
        for part in msg.walk():
            if part.get_content_type() != "message/feedback-report":
                continue
            blocks = _status_blocks(part)
            fields = blocks[0] if blocks else Message()
            recipient = _address(fields.get("Original-Rcpt-To") or fields.get("Removal-Recipient"))
            if not recipient and original is not None:
                recipient = _address(original.get("To"))
            if original is not None:
                to = getaddresses([str(original.get("To", ""))])
                delivery = _bound(paths, delivery, recipient, *(a.lower() for _, a in to))
            else:
                delivery = _bound(paths, delivery, recipient)
            out.append(
                Report(
                    COMPLAINT, delivery, recipient, f"feedback-type {str(fields.get('Feedback-Type', 'abuse')).strip()}"
                )
            )
    return out


@dataclass
class Tally:
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    unmatched: int = 0
    suppressed: list[str] = field(default_factory=list)


def _resolve(session: Session, r: Report) -> tuple[Delivery | None, Subscriber | None, str] | None:
    """The delivery (digests only), subscriber and address a report is about, or None when
    its return path names nothing that still exists."""
    t = r.target
    if t is None:
        return None
    if t.kind == DELIVERY:
        delivery = session.get(Delivery, t.id)
        if delivery is None:
            return None
        sub = session.get(Subscriber, delivery.subscriber_id)
        return delivery, sub, (sub.email if sub else r.recipient)
    if t.kind == SUBSCRIBER:
        sub = session.get(Subscriber, t.id)
        return (None, sub, sub.email) if sub is not None and sub.email else None
    if t.kind == NOTICE:
        item = session.get(Item, t.id)
        return (None, None, item.contact_email) if item is not None and item.contact_email else None
    return (None, None, r.recipient) if r.recipient else None  # ADDRESS, checked in parse


def apply(session: Session, reports: Iterable[Report]) -> Tally:
    """Record ``reports``: log each, mark a digest delivery bounced, suppress the address for
    hard bounces and complaints, unsubscribe complaining subscribers. Unmatched ones change
    nothing."""
    tally = Tally()
    for r in reports:
        found = _resolve(session, r)
        if found is None:
            tally.unmatched += 1
            continue
        delivery, sub, email = found
        email = email.lower()
        log_bounce(session, delivery.id if delivery else None, email, r.kind, r.detail)
        if r.kind == SOFT:
            tally.soft += 1
            continue
        if r.kind == HARD:
            tally.hard += 1
            if delivery is not None:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery.id, Delivery.status.in_((SENT, UNKNOWN)))
                    .values(status=BOUNCED, error=f"bounced: {r.detail}"[:500])
                )
        else:
            tally.complaints += 1
            if sub is not None:
                unsubscribe(session, sub, source="complaint")
        if suppress(session, email, r.kind, "bounce report"):
            tally.suppressed.append(email)
    return tally


def read_messages(source: str | None) -> Iterator[Message]:
    """Messages from a maildir (directory), an mbox (file), or stdin (``-`` or None):
    one message, or an mbox if it starts with a ``From `` line."""
    if source and source != "-":
        path = Path(source)
        if path.is_dir():
            if not (path / "cur").is_dir() and not (path / "new").is_dir():
                raise ValueError(f"{source} is a directory but not a maildir (no cur/ or new/)")
            box = mailbox.Maildir(str(path), factory=None, create=False)
        elif path.is_file():
            box = mailbox.mbox(str(path), factory=None, create=False)
        else:
            raise ValueError(f"{source} does not exist")
        for key in box.iterkeys():
            yield message_from_bytes(box.get_bytes(key), policy=policy.compat32)
        return
    data = sys.stdin.buffer.read()
    if data.startswith(b"From "):
        with tempfile.NamedTemporaryFile(suffix=".mbox") as tmp:
            tmp.write(data)
            tmp.flush()
            yield from read_messages(tmp.name)
        return
    yield message_from_bytes(data, policy=policy.compat32)


def message_from_file(path: str) -> Message:
    with open(path, "rb") as fh:
        return message_from_binary_file(fh, policy=policy.compat32)
