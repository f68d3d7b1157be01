"""moderation inbox: claims on held things (two moderators never work the same one),
editable rejection reasons, and a description for each topic

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
    with op.batch_alter_table("topics") as batch:
        batch.add_column(sa.Column("description", sa.String(500), nullable=False, server_default=""))
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
    reasons = op.create_table(
        "rejection_reasons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(80), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejection_reasons")),
        sa.UniqueConstraint("title", name=op.f("uq_rejection_reasons_title")),
    )
    # Starter reasons, so the reject form is useful on the first day (editable in the console).
    op.bulk_insert(reasons, [
        {"position": 1, "title": "Out of scope",
         "text": "Thank you for sending this in. It falls outside what the campaign's digest covers."},
        {"position": 2, "title": "Already covered",
         "text": "Thank you. We have already carried this news in a recent digest."},
        {"position": 3, "title": "Needs more detail",
         "text": "Thank you. Please send it again with a short summary and a link to read more."},
        {"position": 4, "title": "Link does not work",
         "text": "Thank you. The link in your item did not open for us: please check it and send it again."},
    ])


def downgrade() -> None:
    with op.batch_alter_table("topics") as batch:
        batch.drop_column("description")
    op.drop_table("rejection_reasons")
    op.drop_index(op.f("ix_claims_staff_id"), table_name="claims")
    op.drop_table("claims")
