"""digest editions: preheader, featured item, schedule and cancellation

Revision ID: 5_digest_editions
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "5_digest_editions"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("preheader", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("featured_item_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("cancelled_at")
        batch.drop_column("scheduled_for")
        batch.drop_column("featured_item_id")
        batch.drop_column("preheader")
