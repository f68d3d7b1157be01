"""delivery engine: backoff column, bounce log, send events

Revision ID: 6_delivery_engine
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "6_delivery_engine"
down_revision = "3_subscriber_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="SET NULL",
                                name=op.f("fk_bounces_delivery_id_deliveries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
    )
    op.create_index(op.f("ix_bounces_delivery_id"), "bounces", ["delivery_id"])
    op.create_index(op.f("ix_bounces_email_hash"), "bounces", ["email_hash"])
    op.create_table(
        "send_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("by", sa.String(length=60), nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE",
                                name=op.f("fk_send_events_edition_id_editions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_events")),
    )
    op.create_index(op.f("ix_send_events_edition_id"), "send_events", ["edition_id"])


def downgrade() -> None:
    op.drop_table("send_events")
    op.drop_table("bounces")
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_column("next_attempt_at")
