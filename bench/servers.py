"""Throw-away servers of our own on loopback, for benchmarks and fault tests that stop or
restart them: a Redis and a PostgreSQL cluster, each on a free port, never the machine's
shared servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own on its own port, persisting to AOF in ``directory``,
    so a test can restart it without touching the shared server."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.dir = directory
        self.proc = None

    def start(self) -> PrivateRedis:
        exe = shutil.which("redis-server")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis flushes the AOF and exits
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb in a temporary directory of its own, which
    the ``postgres`` user can reach when we are root; its own port), so a test can restart
    it (``pg_ctl restart -m fast``) without touching the machine's shared server."""

    def __init__(self):
        self.port = free_port()
        # Not under /tmp, which may be closed to other users (0700 root here).
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = Path(tempfile.mkdtemp(prefix="mailer-pg-", dir=shm))
        self.data = self.dir / "data"

    def _as_owner(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + list(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        if not self.data.exists():
            self._as_owner(shutil.which("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.dir / "log")
        self._as_owner(shutil.which("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")
        return self

    def restart(self) -> None:
        self._as_owner(shutil.which("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_owner(shutil.which("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
