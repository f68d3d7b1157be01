"""groups archive: threads, the archive's text of a post, removal, attachments and the
full-text search index (PostgreSQL: a GIN index over to_tsvector; SQLite: an FTS5 table)

Revision ID: g12b_archive
Revises: c11e_edition_approval
"""
from alembic import op
import sqlalchemy as sa


revision = "g12b_archive"
down_revision = "c11e_edition_approval"
branch_labels = None
depends_on = None

# The search objects are owned by mailer.groups.search (which names them the same) and are
# not declared on the models: migrations/env.py leaves them out of model comparisons.
PG_INDEX = (
    "CREATE INDEX ix_group_posts_fts ON group_posts "
    "USING gin (to_tsvector('english'::regconfig, subject || ' ' || body_text))"
)
SQLITE_TABLE = "CREATE VIRTUAL TABLE group_posts_fts USING fts5(subject, body, tokenize='porter unicode61')"


def upgrade() -> None:
    with op.batch_alter_table("group_posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("subject_key", sa.String(length=300), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("body_text", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("removal", sa.String(length=20), nullable=False, server_default=""))
    with op.batch_alter_table("group_posts", schema=None) as batch_op:
        batch_op.alter_column("subject_key", server_default=None)
        batch_op.alter_column("body_text", server_default=None)
        batch_op.alter_column("removal", server_default=None)
        batch_op.create_index("ix_group_posts_group_thread", ["group_id", "thread_id"], unique=False)
        batch_op.create_index("ix_group_posts_group_message_id", ["group_id", "message_id"], unique=False)
        batch_op.create_index("ix_group_posts_group_subject_key", ["group_id", "subject_key"], unique=False)
    # Posts stored before threads existed each start their own.
    op.execute("UPDATE group_posts SET thread_id = id WHERE thread_id IS NULL")

    op.create_table(
        "group_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["group_posts.id"], name=op.f("fk_group_attachments_post_id_group_posts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_attachments")),
    )
    with op.batch_alter_table("group_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_attachments_post_id"), ["post_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_INDEX)
    else:
        op.execute(SQLITE_TABLE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_group_posts_fts")
    else:
        op.execute("DROP TABLE IF EXISTS group_posts_fts")
    with op.batch_alter_table("group_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_attachments_post_id"))
    op.drop_table("group_attachments")
    with op.batch_alter_table("group_posts", schema=None) as batch_op:
        batch_op.drop_index("ix_group_posts_group_subject_key")
        batch_op.drop_index("ix_group_posts_group_message_id")
        batch_op.drop_index("ix_group_posts_group_thread")
        batch_op.drop_column("removal")
        batch_op.drop_column("body_text")
        batch_op.drop_column("subject_key")
        batch_op.drop_column("thread_id")
