"""groups: daily digests (their ledger rows share group_deliveries), sharing with the
monthly digest (a topic per group), and the editions' frozen "What networks are doing"

Revision ID: g12c_members
Revises: g12b_archive
"""
from alembic import op
import sqlalchemy as sa

revision = "g12c_members"
down_revision = "g12b_archive"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_group_digests_group_id_groups"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_digests")),
        sa.UniqueConstraint("group_id", "day", name=op.f("uq_group_digests_group_id_day")),
    )
    with op.batch_alter_table("group_deliveries") as batch:
        batch.alter_column("post_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_group_deliveries_digest_id_group_digests"),
            "group_digests",
            ["digest_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            batch.f("uq_group_deliveries_digest_id_member_id"), ["digest_id", "member_id"]
        )
        batch.create_check_constraint("post_or_digest", "(post_id IS NULL) <> (digest_id IS NULL)")
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("share_with_digest", sa.Boolean(), server_default="0", nullable=False))
        batch.add_column(sa.Column("topic_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_groups_topic_id_topics"), "topics", ["topic_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("networks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("networks")
    with op.batch_alter_table("groups") as batch:
        batch.drop_constraint(batch.f("fk_groups_topic_id_topics"), type_="foreignkey")
        batch.drop_column("topic_id")
        batch.drop_column("share_with_digest")
    op.execute("DELETE FROM group_deliveries WHERE post_id IS NULL")
    with op.batch_alter_table("group_deliveries") as batch:
        batch.drop_constraint("post_or_digest", type_="check")
        batch.drop_constraint(batch.f("uq_group_deliveries_digest_id_member_id"), type_="unique")
        batch.drop_constraint(batch.f("fk_group_deliveries_digest_id_group_digests"), type_="foreignkey")
        batch.drop_column("digest_id")
        batch.alter_column("post_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("group_digests")
