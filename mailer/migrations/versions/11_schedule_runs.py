"""schedule runs: the scheduler's record of each job's runs, so nothing fires twice or is missed unseen

Revision ID: 11_schedule_runs
Revises: 9_preview_links
"""
from alembic import op
import sqlalchemy as sa

revision = "11_schedule_runs"
down_revision = "9_preview_links"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(40), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("leader", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_runs"),
        sa.UniqueConstraint("job", "scheduled_for", name="uq_schedule_runs_job_scheduled_for"),
    )


def downgrade() -> None:
    op.drop_table("schedule_runs")
