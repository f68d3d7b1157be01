"""subscriber lifecycle: organisation type, practice code, pause, consent basis,
ledger detail, suppression list

Revision ID: 3_subscriber_lifecycle
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "3_subscriber_lifecycle"
down_revision = "4_partner_content"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_type", sa.String(length=30), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("practice_code", sa.String(length=10), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("paused_until", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("consent_basis", sa.String(length=40), nullable=False, server_default="consent"))
    # Existing pending requests count from when the row was made.
    op.execute("UPDATE subscribers SET requested_at = created_at WHERE requested_at IS NULL")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.String(length=300), nullable=False, server_default=""))
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("email_hash", name=op.f("uq_suppressions_email_hash")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("consent_basis")
        batch_op.drop_column("paused_until")
        batch_op.drop_column("requested_at")
        batch_op.drop_column("practice_code")
        batch_op.drop_column("organisation_type")
