"""group delivery ledger: claims with a heartbeat (a dead worker's rows are taken back by
the keepers' sweep, as the edition ledger's are)

Revision ID: g14b_group_claims
Revises: c11g_console_groups
"""
from alembic import op
import sqlalchemy as sa

revision = "g14b_group_claims"
down_revision = "c11g_console_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("group_deliveries") as batch:
        batch.add_column(sa.Column("claim", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("group_deliveries") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("claim")
