"""Fixtures, one per boundary: settings, database, transport, app and client, queue.

Every database test runs on SQLite, and on PostgreSQL too when ``TEST_DATABASE_URL`` is
set. Under ``CI=true`` a missing PostgreSQL or Redis fails the run instead of skipping.
"""
from __future__ import annotations

import os
import re

import pytest
from sqlalchemy import text

import mailer.models  # noqa: F401
from mailer.boot import boot
from mailer.db import Base
from mailer.mail.transport import MemoryTransport
from mailer.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")


def need(value: str | None, what: str) -> str:
    """Skip when a service is not configured, but fail under CI where it must be."""
    if not value:
        if IN_CI:
            pytest.fail(f"{what} is not set, and CI must run these tests")
        pytest.skip(f"{what} not set")
    return value


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path_factory):
    """A migrated, empty database (via Alembic, as production would have it)."""
    from mailer.schema import reset

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url = need(PG_URL, "TEST_DATABASE_URL")
    reset(url)
    return url


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings.from_env({
        "MAILER_ENV": "test",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp_path / "var"),
        "BASE_URL": "https://digest.example.org",
        "SECRET_KEY": "test-secret-key",
        "MAIL_FROM": "End Racism This Generation <digest@ertg.example.org>",
        "WORKER_THREADS": "2",
    })


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def rt(settings, transport):
    """This process's runtime over a clean database (embedded queue: the settings name no
    Redis; tests that need Redis start their own processes)."""
    r = boot(settings, transport=transport)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with r.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    yield r
    r.db.dispose()


@pytest.fixture
def session(rt):
    """A session for arranging and inspecting data; commit explicitly to make rows visible."""
    with rt.db.sessions() as s:
        yield s


@pytest.fixture
def app(rt, settings, transport):
    from mailer.app import create_app

    app = create_app(settings, transport)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def queue(rt):
    """Run queued work to completion: ``queue()`` returns once the in-process queues are empty."""
    rt.queue.ensure_worker()

    def run(timeout_ms: int = 60_000):
        rt.queue.drain(timeout_ms)

    return run


@pytest.fixture
def demo(rt):
    """The demo catalogue, items (dated this month) and subscribers."""
    from datetime import date

    from mailer.demo import seed_demo

    with rt.db.transaction() as s:
        secrets = seed_demo(s, date.today())
    return secrets


def csrf_token(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert m, "page has no CSRF token"
    return m.group(1)


def links_in(message: bytes) -> list[str]:
    """Every http(s) URL in the plain-text part of a message."""
    from email import message_from_bytes, policy

    msg = message_from_bytes(message, policy=policy.default)
    body = msg.get_body(("plain",)).get_content()
    return re.findall(r"https?://\S+", body)


CHROMIUM = "/usr/bin/chromium"  # Debian's; never `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the run, driven by Playwright (skipped without it, but a
    failure under CI, which must run the browser tests)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(None, "the playwright package")
    if not os.path.exists(CHROMIUM):
        need(None, f"{CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def live_server(rt, settings, transport):
    """The app served over HTTP on loopback; yields its base URL. Plain http, so the
    session (CSRF) cookie is not marked Secure."""
    import dataclasses
    import threading

    from werkzeug.serving import make_server

    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, base_url="http://127.0.0.1"), transport)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
