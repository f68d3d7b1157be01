"""The audit log: who changed what, when, from where, with before and after.

Every edge that lets a person change something calls :func:`record` in the same
transaction as the change, so the entry exists exactly when the change does. Entries are
never updated or deleted (the model refuses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.db import like_escaped, utcnow
from mailer.paging import Paged
from mailer.staff.models import AuditEntry, StaffUser


def object_ref(obj) -> tuple[str | None, str | None]:
    """``(type, id)`` naming ``obj``: a model instance (its table name and id), a
    ``(type, id)`` pair, or None."""
    if obj is None:
        return None, None
    if isinstance(obj, tuple):
        kind, ident = obj
        return str(kind), (None if ident is None else str(ident))
    table = getattr(obj, "__tablename__", type(obj).__name__.lower())
    return table, str(getattr(obj, "id", "")) or None


def record(
    session: Session,
    actor: StaffUser | str,
    action: str,
    obj=None,
    before: dict | None = None,
    after: dict | None = None,
    ip: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add one entry (flushed, not committed: the caller's transaction keeps it or not).

    ``actor`` is a staff account or a name (``cli:alice``; the name typed at a failed
    login). ``action`` is a dotted verb such as ``staff.create`` or ``login.failed``.
    ``before``/``after`` hold the fields that changed, as JSON-ready values.
    """
    kind, ident = object_ref(obj)
    entry = AuditEntry(
        at=at or utcnow(),
        actor_id=actor.id if isinstance(actor, StaffUser) else None,
        actor=(actor.username if isinstance(actor, StaffUser) else str(actor))[:100],
        ip=(ip or None) and ip[:45],
        action=action,
        object_type=kind,
        object_id=ident,
        before=before,
        after=after,
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditPage(Paged):
    entries: list[AuditEntry]
    total: int
    page: int
    per_page: int


def search(
    session: Session,
    *,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    page: int = 1,
    per_page: int = 50,
) -> AuditPage:
    """Entries matching every filter given (exact actor and object; ``action`` matches as a
    prefix, so ``staff`` finds ``staff.create`` and ``staff.disable``), newest first."""
    q = select(AuditEntry)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where((AuditEntry.action == action) | AuditEntry.action.like(like_escaped(action) + ".%", escape="\\"))
    if object_type:
        q = q.where(AuditEntry.object_type == object_type)
    if object_id:
        q = q.where(AuditEntry.object_id == object_id)
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    page = max(1, page)
    rows = session.scalars(q.order_by(AuditEntry.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    return AuditPage(list(rows), total, page, per_page)
