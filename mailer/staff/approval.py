"""Separation of duties for editions: who may approve an edition for scheduling or sending.

With the deployment's ``REQUIRE_SECOND_APPROVER`` on (the default), an edition drafted or
last changed by one person must be approved by someone else before it can be scheduled or
sent. :func:`approve` records an approval (after :func:`can_approve`); :func:`check_ready`
is what scheduling and sending ask. Functions change the edition object, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailer.db import utcnow
from mailer.digest.editions import EditionError
from mailer.digest.models import EDITABLE, Edition
from mailer.staff.models import StaffUser
from mailer.staff.permissions import EDITIONS_APPROVE, allows


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def can_approve(
    edition_changed_by: StaffUser | int | None, approver: StaffUser, *, second_approver_required: bool = True
) -> Decision:
    """Whether ``approver`` may approve an edition last changed by ``edition_changed_by``
    (an account, its id, or None when no person changed it: built by the scheduler or a
    command).

    The approver needs the approve permission and an enabled account; with a second
    approver required, they must not be the person who last changed the edition.
    """
    if approver.disabled:
        return Decision(False, f"{approver.username}'s account is disabled.")
    if not allows(approver.role, EDITIONS_APPROVE):
        return Decision(False, f"A {approver.role} cannot approve editions.")
    changed_by_id = edition_changed_by.id if isinstance(edition_changed_by, StaffUser) else edition_changed_by
    if second_approver_required and changed_by_id is not None and changed_by_id == approver.id:
        return Decision(
            False,
            "You changed this edition last, so someone else must approve it "
            "(this deployment requires a second approver).",
        )
    return Decision(True)


class ApprovalError(EditionError):
    """An edition may not be approved, scheduled or sent yet; the message says why."""


def needs_approval(edition: Edition, *, second_approver_required: bool = True) -> bool:
    """Whether ``edition`` still waits for a second person's approval.

    Only an edition a person built or changed in the console waits (``changed_by_id``): one
    built by the monthly job or a command was never drafted by someone who could then
    approve it themselves. Any change voids an approval (see
    :func:`mailer.digest.lifecycle.void_approval`)."""
    return second_approver_required and edition.changed_by_id is not None and edition.approved_by_id is None


def check_ready(edition: Edition, *, second_approver_required: bool = True) -> None:
    """Refuse (:class:`ApprovalError`) to schedule or send an edition still waiting for
    approval."""
    if needs_approval(edition, second_approver_required=second_approver_required):
        raise ApprovalError(
            f"The {edition.period} edition must be approved by someone other than the person "
            "who last changed it before it can be scheduled or sent."
        )


def approve(edition: Edition, approver: StaffUser, *, second_approver_required: bool = True) -> None:
    """Record ``approver``'s approval of ``edition`` (still a draft or scheduled), or
    :class:`ApprovalError` with :func:`can_approve`'s reason. The caller audits it."""
    if edition.status not in EDITABLE:
        raise ApprovalError(f"The {edition.period} edition is {edition.status}; there is nothing left to approve.")
    decision = can_approve(edition.changed_by_id, approver, second_approver_required=second_approver_required)
    if not decision:
        raise ApprovalError(decision.reason)
    edition.approved_by_id = approver.id
    edition.approved_at = utcnow()
