"""claim heartbeat: which claim holds a delivery being sent, and when it last beat

Revision ID: 14a_claim_heartbeat
Revises: 12_staff_and_audit
"""
from alembic import op
import sqlalchemy as sa

revision = "14a_claim_heartbeat"
down_revision = "g12a_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claim", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("claim")
