"""Request logs: the route of a token link is logged, never the token (mailer.web.access_log)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TOKEN = "eyJzIjo3LCJ2IjoxfQ.Z2h0cQ.secret-part-of-the-link"
PATHS = [
    f"/u/{TOKEN}",
    f"/manage/{TOKEN}/data",
    f"/confirm/{TOKEN}",
    f"/submit/{TOKEN}",
    f"/view/2026-12/{TOKEN}",
    f"/preview/{TOKEN}/frame?subscriber=amina%40x.org",
]
ROUTES = [
    "/u/<token>",
    "/manage/<token>/data",
    "/confirm/<token>",
    "/submit/<token>",
    "/view/2026-12/<token>",
    "/preview/<token>/frame",
]


def _get(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=10).read()
    except urllib.error.HTTPError:
        pass  # a refused token is still a logged request


def test_development_server_logs_routes_not_tokens(live_server, caplog):
    with caplog.at_level("INFO", logger="werkzeug"):
        for path in PATHS:
            _get(live_server + path)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "werkzeug")
    for route in ROUTES:
        assert route in logged, logged
    assert "secret-part" not in logged and "amina" not in logged, logged


def test_gunicorn_access_log_records_routes_not_tokens(settings, tmp_path):
    """The production server, as README runs it: its access log holds no token."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    access = tmp_path / "access.log"
    env = {
        **os.environ,
        "MAILER_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "VAR_DIR": str(tmp_path / "var"),
        "BASE_URL": f"http://127.0.0.1:{port}",
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    env.pop("REDIS_URL", None)
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--access-logfile",
            str(access),
            "wsgi:app",
        ],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("gunicorn did not start")
                time.sleep(0.05)
        for path in PATHS:
            _get(f"http://127.0.0.1:{port}{path}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    logged = access.read_text()
    for route in ROUTES:
        assert route in logged, logged
    assert "secret-part" not in logged and "amina" not in logged, logged
