"""preview links: a per-edition generation, so every preview link issued so far can be revoked

Revision ID: 9_preview_links
Revises: 8_pending_subscription
"""
from alembic import op
import sqlalchemy as sa

revision = "9_preview_links"
down_revision = "8_pending_subscription"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("preview_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("preview_generation")
