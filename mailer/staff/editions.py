"""What a person does to an edition in the console, each step audited with before and after.

Shells over the digest and delivery domains (building, editing, scheduling, sending
control) that add the two things a person's action needs: separation of duties (who last
changed an edition, whether someone else approved it: :mod:`mailer.staff.approval`) and
an audit entry in the caller's transaction. ``actor`` is the staff account, ``ip`` the
client's address (a command passes ``cli:<os user>`` and no address). Functions take a
session and never commit; a refusal raises
:class:`~mailer.digest.editions.EditionError` (or the delivery layer's ``ControlError``)
and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from mailer.delivery import control
from mailer.digest import lifecycle, status
from mailer.digest.editions import EditionError, build_edition, edition_items, find_edition
from mailer.digest.models import EDITABLE, SCHEDULED, Edition
from mailer.groups import network
from mailer.staff import approval, audit
from mailer.staff.models import StaffUser

EDITABLE_FIELDS = ("subject", "preheader", "intro", "featured_item_id", "item_order")
Actor = StaffUser | str  # a staff account, or a command's ``cli:<os user>``


def snapshot(edition: Edition) -> dict:
    """What the audit log keeps of an edition: the editor's fields and where it stands."""
    return {
        "subject": edition.subject,
        "preheader": edition.preheader,
        "intro": edition.intro,
        "featured_item_id": edition.featured_item_id,
        "item_order": list(edition.item_order) if edition.item_order else None,
        "status": edition.status,
        "scheduled_for": edition.scheduled_for.isoformat() if edition.scheduled_for else None,
    }


def _changed_by(session, edition: Edition, actor: Actor) -> None:
    """A person (a staff account) is now the last to have changed ``edition``; a scheduled
    edition goes back to draft, since what was approved for that time has changed. A
    command (``cli:<user>``) changes neither: its change has voided any approval already
    (see :func:`mailer.digest.lifecycle.void_approval`), which holds back a scheduled send
    of an edition that needs one."""
    if not isinstance(actor, StaffUser):
        return
    edition.changed_by_id = actor.id
    if edition.status == SCHEDULED:
        lifecycle.unschedule(session, edition)


def _name(actor: Actor) -> str:
    return actor.username if isinstance(actor, StaffUser) else actor


def build(session, period: str, actor: Actor, *, settings, ip: str | None = None) -> Edition:
    """Create or rebuild ``period``'s edition from the approved items and the threads
    groups share with the digest (``settings``: for the links to them)."""
    existing = find_edition(session, period)
    before = snapshot(existing) if existing is not None else None
    old_items = {i.id for i in edition_items(session, existing.id)} if existing is not None else set()
    edition = build_edition(session, period)
    network.freeze(session, edition, settings)
    session.flush()
    _changed_by(session, edition, actor)
    items = [i.id for i in edition_items(session, edition.id)]
    audit.record(
        session,
        actor,
        "edition.build",
        edition,
        before=before and {**before, "items": sorted(old_items)},
        after={**snapshot(edition), "items": items},
        ip=ip,
    )
    return edition


def edit(session, edition: Edition, actor: Actor, *, ip: str | None = None, **changes) -> dict:
    """Change the editor's fields (:func:`mailer.digest.lifecycle.edit`); returns the fields
    that changed, ``{}`` when none did (then nothing is recorded)."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not an editable field: {sorted(unknown)}")
    before = snapshot(edition)
    lifecycle.edit(session, edition, **changes)
    after = snapshot(edition)
    changed = sorted(k for k in EDITABLE_FIELDS if before[k] != after[k])
    if not changed:
        return {}
    _changed_by(session, edition, actor)
    audit.record(
        session,
        actor,
        "edition.edit",
        edition,
        before={k: before[k] for k in changed} | {"status": before["status"]},
        after={k: after[k] for k in changed} | {"status": edition.status},
        ip=ip,
    )
    return {k: after[k] for k in changed}


def approve(
    session, edition: Edition, actor: StaffUser, *, second_approver_required: bool, ip: str | None = None
) -> None:
    approval.approve(edition, actor, second_approver_required=second_approver_required)
    audit.record(
        session,
        actor,
        "edition.approve",
        edition,
        after={**snapshot(edition), "changed_by_id": edition.changed_by_id},
        ip=ip,
    )


def reject(session, edition: Edition, actor: Actor, reason: str, *, ip: str | None = None) -> None:
    """Send the edition back to its editor with ``reason``: any approval is withdrawn and
    a scheduled edition goes back to draft."""
    reason = (reason or "").strip()
    if not reason:
        raise EditionError("Say what needs to change, so the editor knows.")
    if len(reason) > 1000:
        raise EditionError("Keep the reason under 1,000 characters.")
    if edition.status not in EDITABLE:
        raise EditionError(f"The {edition.period} edition is {edition.status}; there is nothing left to reject.")
    before = {"approved_by_id": edition.approved_by_id, "status": edition.status}
    lifecycle.void_approval(edition)
    if edition.status == SCHEDULED:
        lifecycle.unschedule(session, edition)
    audit.record(
        session,
        actor,
        "edition.reject",
        edition,
        before=before,
        after={"approved_by_id": None, "status": edition.status, "reason": reason},
        ip=ip,
    )


def schedule(
    session, edition: Edition, when: datetime, actor: Actor, *, second_approver_required: bool, ip=None
) -> None:
    approval.check_ready(edition, second_approver_required=second_approver_required)
    before = snapshot(edition)
    lifecycle.schedule(session, edition, when)
    audit.record(session, actor, "edition.schedule", edition, before=before, after=snapshot(edition), ip=ip)


def unschedule(session, edition: Edition, actor: Actor, *, ip: str | None = None) -> None:
    before = snapshot(edition)
    lifecycle.unschedule(session, edition)
    audit.record(session, actor, "edition.unschedule", edition, before=before, after=snapshot(edition), ip=ip)


def send(session, edition: Edition, actor: Actor, *, second_approver_required: bool, ip=None) -> None:
    """Check that ``edition`` may be sent now and record who sent it; the caller enqueues
    the fan-out after its commit (the queue's job starts the send). Sending an edition that
    is already sending or sent again is allowed: it reaches only readers it has not."""
    approval.check_ready(edition, second_approver_required=second_approver_required)
    status.check(edition, status.START)
    if edition.status in EDITABLE and not edition_items(session, edition.id):
        raise EditionError(f"The {edition.period} edition has no items; approve some and rebuild it first.")
    audit.record(session, actor, "edition.send", edition, before=snapshot(edition), ip=ip)


def pause(session, edition: Edition, actor: Actor, reason: str = "", *, ip: str | None = None) -> None:
    control.pause(session, edition, _name(actor), reason)
    audit.record(session, actor, "edition.pause", edition, after={"status": edition.status, "reason": reason}, ip=ip)


def resume(session, edition: Edition, actor: Actor, *, ip: str | None = None) -> int:
    """Returns how many deliveries are pending; the caller enqueues them after its commit."""
    n = control.resume(session, edition, _name(actor))
    audit.record(session, actor, "edition.resume", edition, after={"status": edition.status, "queued": n}, ip=ip)
    return n


def cancel(session, edition: Edition, actor: Actor, *, ip: str | None = None) -> int:
    before = edition.status
    n = control.cancel(session, edition, _name(actor))
    audit.record(
        session,
        actor,
        "edition.cancel",
        edition,
        before={"status": before},
        after={"status": edition.status, "not_sent": n},
        ip=ip,
    )
    return n


def resend_unknown(session, edition: Edition, actor: Actor, *, ip: str | None = None) -> int:
    """Returns how many went back to pending; the caller enqueues them after its commit."""
    n = control.resend_unknown(session, edition, _name(actor))
    audit.record(session, actor, "edition.resend_unknown", edition, after={"queued": n}, ip=ip)
    return n


def test_sent(session, edition: Edition, actor: Actor, to: str, as_whom: str, *, ip: str | None = None) -> None:
    """Record a test send (made by the caller through the one send path)."""
    audit.record(session, actor, "edition.test_send", edition, after={"to": to, "as": as_whom}, ip=ip)
