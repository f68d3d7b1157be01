"""console and groups: an import job's heartbeat (a job whose worker died is seen as such);
indexes for the dashboard's "left since the edition" count (subscribers.unsubscribed_at,
deliveries.subscriber_id)

Revision ID: c11g_console_groups
Revises: g12c_members (main's head at the merge; asked for c11e_edition_approval)
"""
from alembic import op
import sqlalchemy as sa

revision = "c11g_console_groups"
down_revision = "g12c_members"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_subscribers_unsubscribed_at", "subscribers", ["unsubscribed_at"])
    op.create_index("ix_deliveries_subscriber", "deliveries", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_subscriber", table_name="deliveries")
    op.drop_index("ix_subscribers_unsubscribed_at", table_name="subscribers")
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("heartbeat_at")
