"""pending subscription requests: the profile someone asked for, kept apart until confirmed

Revision ID: 8_pending_subscription
Revises: 7_keyed_suppression
"""
from alembic import op
import sqlalchemy as sa

revision = "8_pending_subscription"
down_revision = "7_keyed_suppression"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.add_column(sa.Column("pending_request", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.drop_column("pending_request")
