"""partner content: partner profile and feed state, API tokens, rich items, moderation log

Revision ID: 4_partner_content
Revises: 0001
Create Date: 2026-11-26 09:33:28.812255
"""
from alembic import op
import sqlalchemy as sa


revision = '4_partner_content'
down_revision = "5_digest_editions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_api_tokens_partner_id_partners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_partner_id'), ['partner_id'], unique=False)

    op.create_table('item_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_item_events_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_events'))
    )
    with op.batch_alter_table('item_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_events_item_id'), ['item_id'], unique=False)

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_markdown', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('body_html', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('image_url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('image_alt', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('event_starts_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('event_place', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('publish_from', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('publish_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('contact_email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=10), server_default='form', nullable=False))
        batch_op.add_column(sa.Column('source_key', sa.String(length=600), nullable=True))
        batch_op.add_column(sa.Column('source_fingerprint', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('original', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('featured', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('decision_reason', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('receipt_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('decision_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_items_partner_id_source_key'), ['partner_id', 'source_key'])

    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.String(length=500), server_default='', nullable=False))
        batch_op.add_column(sa.Column('logo_url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('contact_email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('trusted', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('feed_url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('feed_etag', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('feed_modified', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('feed_checked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('feed_error', sa.String(length=1000), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.drop_column('feed_error')
        batch_op.drop_column('feed_checked_at')
        batch_op.drop_column('feed_modified')
        batch_op.drop_column('feed_etag')
        batch_op.drop_column('feed_url')
        batch_op.drop_column('trusted')
        batch_op.drop_column('contact_email')
        batch_op.drop_column('logo_url')
        batch_op.drop_column('description')

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_items_partner_id_source_key'), type_='unique')
        batch_op.drop_column('decision_sent_at')
        batch_op.drop_column('receipt_sent_at')
        batch_op.drop_column('decision_reason')
        batch_op.drop_column('featured')
        batch_op.drop_column('original')
        batch_op.drop_column('source_fingerprint')
        batch_op.drop_column('source_key')
        batch_op.drop_column('source')
        batch_op.drop_column('contact_email')
        batch_op.drop_column('publish_until')
        batch_op.drop_column('publish_from')
        batch_op.drop_column('event_place')
        batch_op.drop_column('event_starts_at')
        batch_op.drop_column('image_alt')
        batch_op.drop_column('image_url')
        batch_op.drop_column('body_html')
        batch_op.drop_column('body_markdown')

    with op.batch_alter_table('item_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_events_item_id'))

    op.drop_table('item_events')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_partner_id'))

    op.drop_table('api_tokens')
