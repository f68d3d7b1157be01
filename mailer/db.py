"""Database foundation: the declarative base, engines and transactions.

Domain functions take a ``Session`` and never commit; the edges (a request, an actor
message, a CLI command) open a :meth:`Database.transaction` and own the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import MetaData, Text, any_, bindparam, cast, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from mailer.files import private_dir, private_file

# Stable constraint names so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    """Timezone-aware now; stored as UTC everywhere."""
    return datetime.now(timezone.utc)


def aware(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones, and every
    time stored here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def among(session: Session, column, values):
    """``column IN values`` for a batch of a few hundred values: on PostgreSQL written as
    ``column = ANY(CAST(:values AS type[]))`` with the array passed as one text parameter.
    An IN list is expanded into one parameter per value each time it runs (SQLAlchemy
    renders them, psycopg re-parses a statement of over 50 parameters every time,
    PostgreSQL plans it afresh): for the send path's per-chunk lookups that was a tenth of
    a millisecond of CPU per message. The array goes as text (:func:`pg_array`) because
    psycopg's list dumper looks at every element in Python."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(cast(bindparam(None, pg_array(values), type_=Text), ARRAY(column.type)))
    return column.in_(values)


def core(session: Session):
    """``session``'s connection, for Core statements on a hot path: plain rows, without the
    ORM's per-statement compile state (and for an UPDATE, its bulk path and session
    synchronisation). Pending ORM changes are flushed first, as the ORM's execute would."""
    session.flush()
    return session.connection()


def pg_array(values) -> str:
    """PostgreSQL's text form of a one-dimensional array: integers as they are, anything
    else a string, each double-quoted with its backslashes and quotes escaped (so no value
    can end an element or the array early)."""
    return (
        "{"
        + ",".join(
            str(v) if type(v) is int else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
        )
        + "}"
    )


def like_escaped(text: str) -> str:
    """``text`` for a ``LIKE`` pattern written with ``escape="\\"``: its ``%`` and ``_``
    match only themselves (someone searching for "50%" or "first_last" means them)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# An execution option a session or connection can carry: on SQLite its transactions start
# with ``BEGIN IMMEDIATE`` (see :func:`make_engine`); elsewhere it means nothing.
WRITE = {"mailer_write": True}


def make_engine(url: str) -> Engine:
    """An engine tuned for this service's use of ``url``.

    SQLite (embedded mode) is shared by web threads, worker threads and the LMTP process:
    WAL lets readers run beside one writer and the busy timeout makes writers queue instead
    of failing. But a deferred transaction that has read (a savepoint begins one) reads
    from a snapshot and takes the write lock only at its first write; if another connection
    committed in between, SQLite cannot upgrade the stale snapshot and fails at once with
    "database is locked", whatever the timeout. So a connection carrying :data:`WRITE`
    (every :meth:`Database.transaction`, every console request that may write) turns
    pysqlite's implicit BEGIN off and starts with ``BEGIN IMMEDIATE``: it takes the write
    lock first, queueing on the busy timeout. The rest keep pysqlite's way: each read sees
    the latest commit (as on PostgreSQL) and holds no lock; a deferred ``BEGIN`` comes
    before the first INSERT/UPDATE/DELETE.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            options = conn.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return  # the driver commits each statement
            dbapi_connection = conn.connection.dbapi_connection
            if options.get("mailer_write"):
                dbapi_connection.isolation_level = None  # no implicit BEGIN: ours instead
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                dbapi_connection.isolation_level = ""  # pysqlite's deferred BEGIN, before a write

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _private_sqlite(path: str) -> None:
    """Create the database file 0600 in a 0700 directory before SQLite opens it: SQLite
    gives its -wal and -shm files the database file's mode, so they stay private too."""
    db = Path(path)
    private_dir(db.parent)
    for f in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))):
        if f == db or f.exists():
            private_file(f)


def _then_read(session: Session) -> None:
    session.execution_options = session.execution_options.union({"mailer_write": False})


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str, info: dict | None = None):
        """``info`` is given to every session (``session.info``): the runtime puts the
        suppression keys there, which domain code needs and must not fetch from globals."""
        self.url = url
        self.info = dict(info or {})
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            _private_sqlite(url.removeprefix("sqlite:///"))
        self.engine = make_engine(url)
        # ``sessions()`` for reading (and writing, on PostgreSQL); ``writer()`` for a session
        # that will write on SQLite too: its transactions take the write lock up front.
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, info=dict(self.info))
        self.writer = sessionmaker(self.engine, expire_on_commit=False, info=dict(self.info), execution_options=WRITE)
        # A writer locks for its first transaction only: what follows its commit (a request
        # reading to queue the work and render the page; an inline queue's job taking the
        # lock itself) reads, as a ``sessions()`` session does.
        event.listen(self.writer, "after_commit", _then_read)

    @contextmanager
    def transaction(self, *, lock_first: bool = True) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back if it raises. On
        SQLite it holds the write lock from its first statement to the end; with
        ``lock_first=False`` only from its first write, for a long transaction that reads
        a while and lets short ones (its own progress beats) commit meanwhile: it must not
        read inside a savepoint before that first write (see :func:`make_engine`)."""
        with (self.writer if lock_first else self.sessions)() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.engine.dispose()
