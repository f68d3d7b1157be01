"""inbound messages: what the LMTP receiver accepted, written before it answers 250

Revision ID: 13_inbound
Revises: 11_schedule_runs
"""
from alembic import op
import sqlalchemy as sa

revision = "13_inbound"
down_revision = "11_schedule_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("mail_from", sa.String(length=320), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
    )
    op.create_index(op.f("ix_inbound_messages_status"), "inbound_messages", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_inbound_messages_status"), table_name="inbound_messages")
    op.drop_table("inbound_messages")
