"""groups: mailing lists, their members and consent ledger, sender rules, posts and the
group delivery ledger

Revision ID: g12a_groups
Revises: 12_staff_and_audit
"""
from alembic import op
import sqlalchemy as sa


revision = "g12a_groups"
down_revision = "c11_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('visibility', sa.String(length=20), nullable=False),
    sa.Column('posting_policy', sa.String(length=20), nullable=False),
    sa.Column('max_bytes', sa.Integer(), nullable=False),
    sa.Column('allow_attachments', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
    sa.UniqueConstraint('slug', name=op.f('uq_groups_slug'))
    )
    op.create_table('group_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('delivery', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('basis', sa.String(length=40), nullable=False),
    sa.Column('token_version', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_members_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_members')),
    sa.UniqueConstraint('group_id', 'email_key', name=op.f('uq_group_members_group_id_email_key'))
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_members_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_members_status'), ['status'], unique=False)

    op.create_table('group_posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('author_email', sa.String(length=320), nullable=False),
    sa.Column('author_name', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('message_id', sa.String(length=300), nullable=False),
    sa.Column('in_reply_to', sa.String(length=300), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('hold_reason', sa.String(length=300), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=120), nullable=False),
    sa.Column('decision_reason', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_posts_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_posts')),
    sa.UniqueConstraint('inbound_message_id', name=op.f('uq_group_posts_inbound_message_id'))
    )
    with op.batch_alter_table('group_posts', schema=None) as batch_op:
        batch_op.create_index('ix_group_posts_group_status', ['group_id', 'status'], unique=False)

    op.create_table('group_senders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('by', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_senders_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_senders')),
    sa.UniqueConstraint('group_id', 'email_key', name=op.f('uq_group_senders_group_id_email_key'))
    )
    op.create_table('group_consent_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('source', sa.String(length=30), nullable=False),
    sa.Column('wording_version', sa.String(length=20), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['group_members.id'], name=op.f('fk_group_consent_events_member_id_group_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_consent_events'))
    )
    with op.batch_alter_table('group_consent_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_consent_events_member_id'), ['member_id'], unique=False)

    op.create_table('group_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['group_members.id'], name=op.f('fk_group_deliveries_member_id_group_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['group_posts.id'], name=op.f('fk_group_deliveries_post_id_group_posts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_deliveries')),
    sa.UniqueConstraint('post_id', 'member_id', name=op.f('uq_group_deliveries_post_id_member_id'))
    )
    with op.batch_alter_table('group_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_group_deliveries_post_status', ['post_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('group_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_group_deliveries_post_status')

    op.drop_table('group_deliveries')
    with op.batch_alter_table('group_consent_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_consent_events_member_id'))

    op.drop_table('group_consent_events')
    op.drop_table('group_senders')
    with op.batch_alter_table('group_posts', schema=None) as batch_op:
        batch_op.drop_index('ix_group_posts_group_status')

    op.drop_table('group_posts')
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_status'))
        batch_op.drop_index(batch_op.f('ix_group_members_group_id'))

    op.drop_table('group_members')
    op.drop_table('groups')
