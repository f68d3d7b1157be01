"""editions: the editor's item order, who last changed an edition and who approved it

Revision ID: c11e_edition_approval
Revises: c11_inbox_moderation
"""
from alembic import op
import sqlalchemy as sa

revision = "c11e_edition_approval"
down_revision = "14a_claim_heartbeat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("item_order", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("changed_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approved_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("approved_by_id")
        batch.drop_column("changed_by_id")
        batch.drop_column("item_order")
