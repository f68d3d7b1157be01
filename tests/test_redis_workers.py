"""The thin path through production-shaped processes: gunicorn, `dramatiq` workers on the
Redis broker, PostgreSQL, and the `mailer` CLI, each a separate process."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mailer.cli.worker import dramatiq_command
from tests.conftest import PG_URL, REDIS_URL, csrf_token, empty_postgres, need

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(env, *args):
    out = subprocess.run([str(BIN / "mailer"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _messages(outbox: Path):
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """gunicorn and a dramatiq worker over a freshly seeded database, for the module."""
    tmp_path = tmp_path_factory.mktemp("stack")
    pg, redis_url = need(PG_URL, "TEST_DATABASE_URL"), need(REDIS_URL, "TEST_REDIS_URL")
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    port = _port()
    env = {
        **os.environ,
        "DATABASE_URL": pg,
        "REDIS_URL": redis_url,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "redis-test-key",
        "MAILER_ENV": "test",
        "BASE_URL": f"http://127.0.0.1:{port}",
    }
    # What `mailer db upgrade` does, in this process: a mailer process costs seconds to start.
    from mailer.schema import upgrade
    from mailer.settings import Settings

    upgrade(pg, suppression_keys=Settings.from_env(env).suppression_keys)
    empty_postgres(pg)
    procs = [
        subprocess.Popen(
            dramatiq_command(1, 2),
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, ended whole below
        ),
        subprocess.Popen(
            [str(BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1", "wsgi:app"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        _run(env, "seed-demo")  # while the worker and the web server boot
        _wait_for(lambda: _up(port), what="gunicorn")
        yield env, port, tmp_path / "outbox"
    finally:
        # The worker at once (a graceful dramatiq stop costs seconds; the test is over), the
        # web server gracefully.
        os.killpg(procs[0].pid, signal.SIGKILL)
        procs[1].terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def _up(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_subscribe_confirm_build_send_unsubscribe_across_processes(stack):
    env, port, outbox = stack
    base = f"http://127.0.0.1:{port}"
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    page = browser.open(f"{base}/subscribe").read().decode()
    topic_id = re.search(r'value="(\d+)"[^>]*>\s*<label for="topics-\d+">Sexual health', page).group(1)
    form = urllib.parse.urlencode(
        {"csrf_token": csrf_token(page), "email": "gp.lead@example.org", "name": "Grace", "topics": topic_id}
    ).encode()
    assert "Check your email" in browser.open(f"{base}/subscribe", data=form).read().decode()

    # The worker process sends the confirmation email.
    msgs = _wait_for(lambda: _messages(outbox), what="confirmation email")
    confirm_url = re.search(r"http://\S+/confirm/\S+", msgs[0].get_body(("plain",)).get_content()).group(0)
    page = browser.open(confirm_url).read().decode()
    done = browser.open(confirm_url, data=urllib.parse.urlencode({"csrf_token": csrf_token(page)}).encode())
    assert "You are subscribed" in done.read().decode()

    period = date.today().strftime("%Y-%m")
    _run(env, "edition", "build", "--period", period)
    out = _run(env, "edition", "send", period, "--wait", "--timeout", "90")
    assert "Edition sent: sent 4" in out
    digests = [m for m in _messages(outbox) if m["List-Unsubscribe"]]
    recipients = sorted(str(m["To"]) for m in digests)
    assert len(recipients) == len(set(recipients)) == 4
    mine = next(m for m in digests if "gp.lead@example.org" in str(m["To"]))
    assert "What works in sexual health services".lower() in mine.get_body(("plain",)).get_content().lower()

    # Sending again sends nothing new.
    assert "sent 4" in _run(env, "edition", "send", period, "--wait", "--timeout", "60")
    assert len([m for m in _messages(outbox) if m["List-Unsubscribe"]]) == 4

    # One-click unsubscribe from a mail client: no cookies, no CSRF token.
    url = mine["List-Unsubscribe"].split(",")[0].strip("<> ")
    resp = urllib.request.urlopen(urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST"))
    assert resp.status == 200 and resp.url == url
    engine = create_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM subscribers WHERE email='gp.lead@example.org'")).scalar()
    engine.dispose()
    assert status == "unsubscribed"
