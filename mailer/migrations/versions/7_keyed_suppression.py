"""suppression list and bounce log: keyed hashes (HMAC under the suppression key)

An unkeyed hash cannot be turned into a keyed one, so entries are re-keyed from the
addresses the database still holds (subscribers not erased, partner and item contacts).
Entries whose address is not known (erased people, addresses never stored) keep their
unkeyed hash; the code matches that too and re-keys an entry when its address comes by.
Downgrade turns keyed hashes of known addresses back into unkeyed ones.

The keys come from ``config.attributes["suppression_keys"]`` (``mailer db upgrade``
passes the process's settings), else from the environment's settings. The hash functions
are written out here, as they were at this revision, so later code changes cannot alter
what this migration did.

Revision ID: 7_keyed_suppression
Revises: 6_delivery_engine
"""
import hashlib
import hmac

import sqlalchemy as sa
from alembic import context, op

revision = "7_keyed_suppression"
down_revision = "6_delivery_engine"
branch_labels = None
depends_on = None

_PREFIX = b"ertg-suppression:"


def _unkeyed(address: str) -> str:
    return hashlib.sha256(_PREFIX + address.strip().casefold().encode("utf-8")).hexdigest()


def _keyed(address: str, key: bytes) -> str:
    return hmac.digest(key, _PREFIX + address.strip().casefold().encode("utf-8"), "sha256").hex()


def _keys() -> tuple[bytes, ...]:
    keys = context.config.attributes.get("suppression_keys")
    if keys is None:
        from mailer.settings import get_settings

        keys = get_settings().suppression_keys
    return tuple(keys)


def _known_addresses(conn) -> set[str]:
    rows = conn.execute(sa.text(
        "SELECT email FROM subscribers WHERE status <> 'erased' "
        "UNION SELECT contact_email FROM partners WHERE contact_email IS NOT NULL "
        "UNION SELECT contact_email FROM items WHERE contact_email IS NOT NULL"))
    return {r[0] for r in rows if r[0]}


def _rehash(keyed: bool) -> None:
    """Re-hash every stored hash of a known address, in both tables: to the current keyed
    hash (``keyed``) or back to the unkeyed one."""
    conn = op.get_bind()
    stored = set(conn.execute(sa.text(
        "SELECT email_hash FROM suppressions UNION SELECT email_hash FROM bounces")).scalars())
    if not stored:
        return  # a new or empty database: nothing to re-key, no settings needed
    keys = _keys()
    changes = {}
    for address in _known_addresses(conn):
        under_keys = [_keyed(address, k) for k in keys]
        olds, new = ([_unkeyed(address)], under_keys[0]) if keyed else (under_keys, _unkeyed(address))
        for old in olds:
            if old in stored:
                changes[old] = new
    for table in ("suppressions", "bounces"):
        for old, new in changes.items():
            conn.execute(sa.text(f"UPDATE {table} SET email_hash = :new WHERE email_hash = :old"),
                         {"new": new, "old": old})


def upgrade() -> None:
    _rehash(keyed=True)


def downgrade() -> None:
    _rehash(keyed=False)
