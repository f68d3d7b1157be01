"""console people screens: subscriber search indexes, import jobs, TOTP secrets encrypted

- indexes for the console's subscriber search: lower(email), practice_code, the topic
  and partner columns of the choice tables (their primary keys lead with the subscriber),
  and on PostgreSQL a trigram index (pg_trgm) for "address, name or organisation contains";
- ``import_jobs``: an import's file, dry-run report and progress;
- ``staff_users.totp_secret`` widened and every stored secret encrypted (Fernet under a
  key derived from ``SECRET_KEY``); downgrade decrypts them again.

The keys come from ``config.attributes["totp_keys"]`` (``mailer db upgrade`` passes the
process's settings), else from the environment's settings. The derivation is written out
here, as it is at this revision, so later code changes cannot alter what this did.

Revision ID: c11_people
Revises: 12_staff_and_audit
"""
import base64
import hashlib
import hmac

import sqlalchemy as sa
from alembic import context, op

revision = "c11_people"
down_revision = "c11_inbox_moderation"
branch_labels = None
depends_on = None


def _fernets():
    from cryptography.fernet import Fernet, MultiFernet  # only when there are secrets to convert

    keys = context.config.attributes.get("totp_keys")
    if keys is None:
        # the environment's settings, only when a database holds secrets
        from mailer.settings import get_settings

        s = get_settings()
        keys = [
            hmac.digest(secret.encode(), b"ertg-mailer-totp-key", hashlib.sha256)
            for secret in (s.secret_key, *s.secret_key_fallbacks)
        ]
    return MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys])


def _convert(seal: bool) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, totp_secret FROM staff_users WHERE totp_secret IS NOT NULL")).all()
    if not rows:
        return  # a new or empty database: no settings needed
    f = _fernets()
    for ident, value in rows:
        new = f.encrypt(value.encode()).decode() if seal else f.decrypt(value.encode()).decode()
        conn.execute(sa.text("UPDATE staff_users SET totp_secret = :v WHERE id = :i"), {"v": new, "i": ident})


def upgrade() -> None:
    op.create_index("ix_subscribers_email_lower", "subscribers", [sa.text("lower(email)")])
    op.create_index(op.f("ix_subscribers_practice_code"), "subscribers", ["practice_code"])
    op.create_index("ix_subscriber_topics_topic_id", "subscriber_topics", ["topic_id"])
    op.create_index("ix_subscriber_partners_partner_id", "subscriber_partners", ["partner_id"])
    if op.get_bind().dialect.name == "postgresql":
        # substring search by trigrams (pg_trgm is a trusted extension: the owner may add it)
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_subscribers_text_trgm ON subscribers USING gin "
            "(lower(email) gin_trgm_ops, lower(name) gin_trgm_ops, lower(organisation) gin_trgm_ops)"
        )
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("basis", sa.String(40), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("skip_invalid", sa.Boolean(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("dry_run_counts", sa.JSON()),
        sa.Column("counts", sa.JSON()),
        sa.Column("report", sa.JSON()),
        sa.Column("error", sa.String(500), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    op.create_index(op.f("ix_import_jobs_status"), "import_jobs", ["status"])
    with op.batch_alter_table("staff_users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(255), existing_type=sa.String(64))
    _convert(seal=True)


def downgrade() -> None:
    _convert(seal=False)
    with op.batch_alter_table("staff_users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(64), existing_type=sa.String(255))
    op.drop_index(op.f("ix_import_jobs_status"), table_name="import_jobs")
    op.drop_table("import_jobs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_subscribers_text_trgm")  # the extension stays: others may use it
    op.drop_index("ix_subscriber_partners_partner_id", table_name="subscriber_partners")
    op.drop_index("ix_subscriber_topics_topic_id", table_name="subscriber_topics")
    op.drop_index(op.f("ix_subscribers_practice_code"), table_name="subscribers")
    op.drop_index("ix_subscribers_email_lower", table_name="subscribers")
