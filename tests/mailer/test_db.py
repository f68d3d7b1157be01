"""mailer/db.py: engines and their files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest
from sqlalchemy import text

from mailer.db import Database


def test_a_second_engine_on_a_live_sqlite_file_leaves_the_first_ones_locks_alone(tmp_path):
    """Embedded mode opens the same SQLite file from several engines (the app, a test-send,
    a CLI command) while other processes (workers, the LMTP receiver) write to it. Making
    the files private must not drop the first engine's locks: when it did, the next process
    to open the file rebuilt the shared WAL index under the first engine's feet and its next
    read failed with "database disk image is malformed"."""
    path = tmp_path / "live.db"
    first = Database(f"sqlite:///{path}")
    with first.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    reader = first.engine.connect()
    reader.execute(text("SELECT count(*) FROM t")).all()
    reader.commit()

    second = Database(f"sqlite:///{path}")
    writer = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL')\n"
        "for _ in range(50):\n"
        "    c.execute('INSERT INTO t VALUES (5)'); c.commit()\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(path)], check=True, timeout=30)
    with second.engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))

    assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 52
    reader.close()
    first.dispose()
    second.dispose()
    assert (path.stat().st_mode & 0o777) == 0o600


def _table(path):
    db = Database(f"sqlite:///{path}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return db


def _other_process(path):
    """A writer elsewhere (a worker thread's engine, the LMTP process) that does not wait."""
    return sqlite3.connect(path, timeout=0, isolation_level=None)


def test_a_transaction_that_reads_first_can_still_write_after_another_connection_committed(tmp_path):
    """A deferred SQLite transaction reads from a snapshot and asks for the write lock only
    at its first write; once another connection has committed in between, the snapshot
    cannot be upgraded and the write fails at once with "database is locked", whatever the
    busy timeout (a console bulk approval did, in its first item's savepoint, while a worker
    sent the notices the request before had queued). A transaction takes the write lock up front instead: the other writer
    waits (here, with no timeout, it is refused) and the transaction's own write goes in."""
    path = tmp_path / "locks.db"
    db = _table(path)
    other = _other_process(path)
    with db.transaction() as s, s.begin_nested():  # as bulk approval does, an item at a time
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 0
        try:
            other.execute("INSERT INTO t VALUES (2)")
            refused = None
        except sqlite3.OperationalError as err:
            refused = str(err)
        s.execute(text("INSERT INTO t VALUES (1)"))  # before the fix: "database is locked"
        assert refused == "database is locked"
    other.execute("INSERT INTO t VALUES (2)")  # the lock went with the commit
    with db.sessions() as s:
        assert s.scalars(text("SELECT x FROM t ORDER BY x")).all() == [1, 2]
    other.close()
    db.dispose()


def test_a_writer_waits_for_a_transaction_holding_the_lock_instead_of_failing(tmp_path):
    """With the usual busy timeout, the second writer (another engine, in another thread)
    queues behind the first transaction and goes in once it commits; nobody fails."""
    path = tmp_path / "locks.db"
    a, b = _table(path), Database(f"sqlite:///{path}")
    asking, failures = threading.Event(), []

    def write_b():
        asking.set()
        try:
            with b.transaction() as s:
                s.execute(text("INSERT INTO t VALUES (2)"))
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(err)

    with a.transaction() as s:
        s.execute(text("SELECT count(*) FROM t")).scalar()
        worker = threading.Thread(target=write_b)
        worker.start()
        asking.wait(10)
        s.execute(text("INSERT INTO t VALUES (1)"))
    worker.join(40)
    assert failures == []
    with a.sessions() as s:
        assert sorted(s.scalars(text("SELECT x FROM t"))) == [1, 2]
    a.dispose()
    b.dispose()


def test_reading_sessions_and_connections_leave_the_write_lock_to_writers(tmp_path):
    """A read-only session (``sessions()``) and a plain connection take no lock: a writer
    elsewhere goes in beside them, and their next read sees its commit (as on PostgreSQL)."""
    path = tmp_path / "locks.db"
    db = _table(path)
    other = _other_process(path)
    with db.sessions() as s, db.engine.connect() as conn:
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
        other.execute("INSERT INTO t VALUES (1)")
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    other.close()
    db.dispose()


def test_savepoints_roll_back_and_autocommit_connections_commit_each_statement(tmp_path):
    """The dry runs (import preview, audience preview) undo their writes with a savepoint;
    the outcome recorder writes through an autocommit connection, which must not leave the
    pooled connection beginning its own transactions afterwards."""
    path = tmp_path / "locks.db"
    db = _table(path)
    with db.transaction() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        savepoint = s.begin_nested()
        s.execute(text("INSERT INTO t VALUES (2)"))
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 2
        savepoint.rollback()
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 1
        with s.begin_nested():
            s.execute(text("INSERT INTO t VALUES (3)"))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("INSERT INTO t VALUES (4)"))
        assert not conn.connection.dbapi_connection.in_transaction
    other = _other_process(path)
    other.execute("INSERT INTO t VALUES (5)")  # nothing left holding a lock
    with db.engine.connect() as conn:  # the pool's connection again, reset
        assert sorted(conn.scalars(text("SELECT x FROM t"))) == [1, 3, 4, 5]
        conn.execute(text("INSERT INTO t VALUES (6)"))
        conn.rollback()
        assert 6 not in conn.scalars(text("SELECT x FROM t")).all()
    with db.transaction() as s:  # and a transaction on it after all that still locks first
        s.execute(text("SELECT 1"))
        assert other.execute("SELECT count(*) FROM t").fetchone() == (4,)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("INSERT INTO t VALUES (7)")
    other.close()
    db.dispose()


def test_a_writing_session_reads_after_its_commit_without_holding_the_lock(tmp_path):
    """A console request commits, then reads to queue its follow-up work, which (with an
    inline queue) opens its own transaction at once: the request must not hold the write
    lock through that read, or the job waits out the busy timeout."""
    path = tmp_path / "locks.db"
    db = _table(path)
    other = _other_process(path)
    with db.writer() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        s.commit()
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 1
        other.execute("INSERT INTO t VALUES (2)")  # not refused: the session holds no lock
    other.close()
    db.dispose()


@pytest.mark.dialects("sqlite", "postgresql")
def test_among_matches_exactly_the_values_given_whatever_they_hold(session):
    """On PostgreSQL the values travel as one array in text form: a value holding a comma,
    a brace, a quote or a backslash is still one element and matches only itself."""
    from sqlalchemy import literal, select, union_all

    from mailer.db import among

    def rows(*items):  # a table of one column, in SQL both dialects read
        return union_all(*(select(literal(x).label("v")) for x in items)).subquery()

    hostile = ["plain", "a,b", "{x}", 'q"uote', "back\\slash", "trail\\", "NULL", "", " spaced ", "é"]
    table = rows(*hostile, "a", "b", "x", "other")
    got = session.execute(select(table.c.v).where(among(session, table.c.v, hostile))).scalars().all()
    assert sorted(got) == sorted(hostile)
    numbers = rows(*range(-3, 400))
    wanted = [-3, 0, 7, 399, 1000]
    got = session.execute(select(numbers.c.v).where(among(session, numbers.c.v, wanted))).scalars().all()
    assert sorted(got) == [-3, 0, 7, 399]
    assert session.execute(select(numbers.c.v).where(among(session, numbers.c.v, []))).all() == []
