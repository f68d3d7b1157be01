"""Which scheduler leads: a lock that exactly one process holds and a standby inherits.

Three backends, one interface (:class:`Leadership`): ``acquire()`` tries once and never
blocks, ``hold()`` says whether this process still leads (renewing what needs renewing),
``release()`` lets go, ``holder()`` names the current leader (``host:pid``) for any process.

| backend | when | a standby takes over |
|---|---|---|
| :class:`PgLeadership`: ``pg_try_advisory_lock`` on a dedicated connection | ``DATABASE_URL`` is PostgreSQL | when the leader's session ends: at once if its process dies (the kernel closes the socket), within about 30 s if its machine or network does (TCP keepalives set on the session), at the standby's next try |
| :class:`RedisLeadership`: ``SET NX PX`` with a TTL the leader renews | otherwise, with ``REDIS_URL`` | when the key expires: at most ``ttl`` (30 s) after the leader's last renewal (every 10 s) |
| :class:`FileLeadership`: ``flock`` on a file under ``VAR_DIR`` | embedded mode (SQLite on one machine) | at once: the kernel drops the lock with the process |

The scheduler tries every few seconds (``Scheduler.poll_seconds``), so add that to the figures.
Leadership only decides who *tries* to fire; the run record (unique per job and scheduled
time, :mod:`mailer.schedule_runs`) decides what fires, so even two processes that both
believe they lead, for a moment, cannot fire the same run twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# Advisory locks are per database; this key means "the mailer's scheduler" in ours.
PG_LOCK_KEY = 0x6D61696C  # "mail"; below 2**31, so pg_locks shows it as classid 0, objid KEY
REDIS_KEY = "mailer:scheduler:leader"
APP_NAME = "mailer-scheduler"


def process_id() -> str:
    """``host:pid``, the name a leader is shown by."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership(Protocol):
    name: str
    me: str

    def acquire(self) -> bool: ...
    def hold(self) -> bool: ...
    def release(self) -> None: ...
    def holder(self) -> str | None: ...


class PgLeadership:
    """A session-level advisory lock held by a connection of its own (never the pool's).

    The connection carries ``application_name`` = ``mailer-scheduler host:pid``, which is how
    :meth:`holder` names the leader from any process (``pg_locks`` x ``pg_stat_activity``).
    """

    name = "PostgreSQL advisory lock"

    def __init__(self, url: str, me: str | None = None, key: int = PG_LOCK_KEY):

        self.me, self.key = me or process_id(), key
        self.engine = create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "application_name": f"{APP_NAME} {self.me}"[:63],
                # Notice a dead server (or network) from this side within ~25 s.
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "connect_timeout": 5,
            },
        )
        self.conn = None

    def _sql(self, sql: str, **params):

        return self.conn.execute(text(sql), params).scalar()

    def acquire(self) -> bool:
        try:
            if self.conn is None:
                self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                # And from the server's side: a leader whose machine vanished loses its
                # session (and the lock) within ~25 s instead of the kernel's two hours.
                from sqlalchemy import text

                for setting, value in (("idle", 10), ("interval", 5), ("count", 3)):
                    self.conn.execute(text(f"SET tcp_keepalives_{setting} = {value}"))
            if self._sql("SELECT pg_try_advisory_lock(:k)", k=self.key):
                return True
        except Exception as err:  # noqa: BLE001 - the database is down: try again later
            log.warning("scheduler lock: %s", err.__class__.__name__)
            self._drop()
        return False

    def hold(self) -> bool:
        """True while the lock's session is alive; it holds the lock until it ends."""
        if self.conn is None:
            return False
        try:
            return bool(
                self._sql(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                    " AND classid = 0 AND objid = :k AND objsubid = 1 AND granted",
                    k=self.key,
                )
            )
        except Exception:  # noqa: BLE001 - the session is gone, and the lock with it
            self._drop()
            return False

    def release(self) -> None:
        if self.conn is not None:
            try:
                self._sql("SELECT pg_advisory_unlock(:k)", k=self.key)
            except Exception:  # noqa: BLE001 - closing the connection releases it anyway
                pass
            self._drop()

    def holder(self) -> str | None:

        with self.engine.connect() as conn:
            name = conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = :k AND l.objsubid = 1"
                    " AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"k": self.key},
            ).scalar()
        if name is None:
            return None
        return name.removeprefix(APP_NAME).strip() or "(unnamed session)"

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.invalidate()
                self.conn.close()
            except Exception:  # noqa: BLE001 - it is already broken
                pass
        self.conn = None

    def close(self) -> None:
        self.release()
        self.engine.dispose()


# Renew only if the key is still ours: a leader that was too slow must not extend the
# lease of the process that took over.
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisLeadership:
    """A Redis key holding the leader's id, set with NX and a TTL; the leader renews it every
    ``renew_seconds`` (checked on each :meth:`hold`), and steps down if the key is no longer
    its own. The TTL must exceed the renewal interval plus the scheduler's poll interval."""

    name = "Redis lock"

    def __init__(
        self,
        client,
        me: str | None = None,
        *,
        key: str = REDIS_KEY,
        ttl_seconds: float = 30,
        renew_seconds: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client, self.me, self.key = client, me or process_id(), key
        self.ttl_ms, self.renew_seconds, self.clock = int(ttl_seconds * 1000), renew_seconds, clock
        self.renewed: float | None = None

    def acquire(self) -> bool:
        try:
            if self.client.set(self.key, self.me, nx=True, px=self.ttl_ms):
                self.renewed = self.clock()
                return True
        except Exception as err:  # noqa: BLE001 - Redis is down: try again later
            log.warning("scheduler lock: %s", err.__class__.__name__)
        return False

    def hold(self) -> bool:
        if self.renewed is None:
            return False
        if self.clock() - self.renewed < self.renew_seconds:
            return True
        try:
            ok = bool(self.client.eval(_RENEW, 1, self.key, self.me, self.ttl_ms))
        except Exception:  # noqa: BLE001 - cannot renew: assume the lease is lost
            ok = False
        self.renewed = self.clock() if ok else None
        return ok

    def release(self) -> None:
        if self.renewed is not None:
            try:
                self.client.eval(_RELEASE, 1, self.key, self.me)
            except Exception:  # noqa: BLE001 - it expires anyway
                pass
        self.renewed = None

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def close(self) -> None:
        self.release()


class FileLeadership:
    """``flock`` on ``path`` (one machine: embedded mode). The file names the holder."""

    name = "file lock"

    def __init__(self, path: Path, me: str | None = None):
        self.path, self.me, self.fd = Path(path), me or process_id(), None

    def acquire(self) -> bool:

        if self.fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, self.me.encode())
        self.fd = fd
        return True

    def hold(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def holder(self) -> str | None:

        if self.fd is not None:
            return self.me
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return self.path.read_text().strip() or "(unnamed process)"
            return None  # nobody holds it
        finally:
            os.close(fd)

    def close(self) -> None:
        self.release()


def leadership_for(settings, me: str | None = None) -> Leadership:
    """The backend the settings call for: PostgreSQL, else Redis, else a file."""
    if settings.database_url.startswith("postgresql"):
        return PgLeadership(settings.database_url, me)
    if settings.redis_url:
        return RedisLeadership(redis.Redis.from_url(settings.redis_url), me)
    return FileLeadership(settings.var_dir / "scheduler.lock", me)
