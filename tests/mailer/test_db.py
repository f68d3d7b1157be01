"""mailer/db.py: engines and their files."""

from __future__ import annotations

import subprocess
import sys

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
