"""editions: where a send's fan-out stands (the first copies leave while the rest of the
ledger is made, a range a transaction)

Revision ID: g15a_fanout_progress
Revises: g14b_group_claims
"""
from alembic import op
import sqlalchemy as sa

revision = "g15a_fanout_progress"
down_revision = "g14b_group_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("fanout_after", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fanout_beat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("fanout_beat_at")
        batch.drop_column("fanout_after")
