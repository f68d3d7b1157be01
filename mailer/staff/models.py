"""Staff accounts of the editors' console and the append-only audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.db import Base, utcnow


class StaffUser(Base):
    """A person who may log in to ``/admin``.

    Nothing secret is kept in a form that logs a person in by itself: the password is an
    Argon2id hash and recovery codes are SHA-256 hashes. The TOTP secret has to be kept as
    it is (a code is computed from it), so a database dump plus the password still gets in;
    that is what the password is for.
    """

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored case-folded; people log in with it and the audit log names them by it.
    username: Mapped[str] = mapped_column(String(60), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    # Base32 TOTP secret once two-factor is enrolled, else None.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The last TOTP time step accepted: a code of that step or an earlier one is refused,
    # so a code seen over someone's shoulder cannot be used again.
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled: Mapped[bool] = mapped_column(default=False, server_default="0")
    # Bumped by a password reset, a 2FA reset or disabling: every session signed in before
    # it stops working at its next request.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    recovery_codes: Mapped[list[RecoveryCode]] = relationship(back_populates="user", cascade="all, delete-orphan")

    def summary(self) -> dict:
        """What the audit log records of an account (never a hash or secret)."""
        return {
            "username": self.username,
            "role": self.role,
            "disabled": self.disabled,
            "two_factor": self.totp_secret is not None,
        }


class RecoveryCode(Base):
    """One single-use code that stands in for a TOTP code (the phone was lost)."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[StaffUser] = relationship(back_populates="recovery_codes")


class AuditEntry(Base):
    """One change a person (or a command) made. Rows are only ever inserted.

    ``actor_id`` is not a foreign key on purpose: the log outlives the account it names,
    and ``actor`` keeps the name as it was (``alice``, ``cli:root``, or the name typed at
    a failed login).
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(60))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)


class Claim(Base):
    """A moderator working on one held thing (a partner item; later a group post), so two
    people never work the same one. One row per thing: the primary key is what makes a
    claim race-safe (see :mod:`mailer.staff.claims`). A claim older than
    ``claims.CLAIM_MINUTES`` has lapsed and anyone may take it over."""

    __tablename__ = "claims"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # the inbox source: "item", ...
    object_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    staff: Mapped[StaffUser] = relationship(lazy="joined")


class AuditLogIsAppendOnly(RuntimeError):
    """Something tried to change or delete an audit entry."""


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_change(_mapper, _connection, entry):  # pragma: no cover - exercised by tests
    raise AuditLogIsAppendOnly(f"audit entry {entry.id} cannot be changed or deleted")
