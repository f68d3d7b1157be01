"""moderation inbox: claims on held things (two moderators never work the same one) and
editable rejection reasons

Revision ID: c11_inbox_moderation
Revises: 12_staff_and_audit
"""
from alembic import op
import sqlalchemy as sa

revision = "c11_inbox_moderation"
down_revision = "12_staff_and_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("object_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "object_id", name=op.f("pk_claims")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"], ondelete="CASCADE",
                                name=op.f("fk_claims_staff_id_staff_users")),
    )
    op.create_index(op.f("ix_claims_staff_id"), "claims", ["staff_id"])
    op.create_table(
        "rejection_reasons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(80), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejection_reasons")),
        sa.UniqueConstraint("title", name=op.f("uq_rejection_reasons_title")),
    )


def downgrade() -> None:
    op.drop_table("rejection_reasons")
    op.drop_index(op.f("ix_claims_staff_id"), table_name="claims")
    op.drop_table("claims")
