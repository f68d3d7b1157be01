"""Separation of duties for editions: who may approve an edition for scheduling or sending.

With the deployment's ``REQUIRE_SECOND_APPROVER`` on (the default), an edition drafted or
last changed by one person must be approved by someone else. The editions screen calls
:func:`can_approve` before it records an approval.
"""

from __future__ import annotations

from dataclasses import dataclass

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
