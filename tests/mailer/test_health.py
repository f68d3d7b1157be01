"""Liveness and readiness (mailer/health.py, mailer/web/health.py): each dependency down in
turn, against real servers on loopback (SQLite/PostgreSQL, Redis, an SMTP relay)."""

from __future__ import annotations

import dataclasses
import socket
import time

import pytest

from mailer.health import FAIL, OK, dependency_checks, readiness
from tests.conftest import REDIS_URL, need
from tests.mailservers import Relay, free_port


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (the kernel's backlog) but never says a word,
    like a host behind a firewall that drops packets after the handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()  # the stuck clients get a reset and their threads end


def probe_app(settings, transport, **changes):
    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, **changes), transport)
    app.config["TESTING"] = True
    return app.test_client()


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def test_healthz_answers_without_touching_the_database(settings, transport):
    client = probe_app(
        settings, transport, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/none"
    )
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json == {"status": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"
    assert client.get("/readyz").status_code == 503  # the same app is not ready


def test_readyz_is_200_when_database_is_reachable_and_at_head(app, client):
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.json
    assert resp.json == {"database": "ok", "migrations": "ok"}  # no Redis or relay configured


def test_readyz_reports_each_dependency_down_by_name_and_nothing_more(settings, transport):
    relay = Relay().start()
    try:
        client = probe_app(settings, transport, smtp_url=relay.url, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.json == {"database": "ok", "migrations": "ok", "redis": "error", "relay": "ok"}
    finally:
        relay.stop()
    resp = client.get("/readyz")  # the relay is gone now
    assert resp.json["relay"] == "error" and resp.status_code == 503
    assert "127.0.0.1" not in resp.text and "Error" not in resp.text  # details go to the log


def test_readyz_reports_an_unreachable_database_and_skips_its_migrations(settings, transport):
    client = probe_app(
        settings, transport, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/none"
    )
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json == {"database": "error", "migrations": "error"}


def test_a_database_behind_this_release_is_not_ready_and_says_how_to_upgrade(settings, transport, tmp_path):
    from mailer.db import make_engine
    from mailer.schema import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "8_pending_subscription")
    client = probe_app(settings, transport, database_url=url)
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.json == {"database": "ok", "migrations": "error"}
    engine = make_engine(url)
    try:
        migrations = {c.name: c for c in dependency_checks(engine, None, None)}["migrations"]
        assert migrations.status == FAIL
        assert "8_pending_subscription" in migrations.detail and "mailer db upgrade" in migrations.fix
        upgrade(url)
        assert {c.name: c.status for c in dependency_checks(engine, None, None)} == {"database": OK, "migrations": OK}
    finally:
        engine.dispose()


def test_readiness_passes_with_real_redis_and_relay(settings, engine_of):
    redis_url = need(REDIS_URL, "TEST_REDIS_URL")
    relay = Relay().start()
    try:
        checks = readiness(dataclasses.replace(settings, redis_url=redis_url, smtp_url=relay.url), engine_of(settings))
    finally:
        relay.stop()
    assert {c.name: c.status for c in checks} == {"database": OK, "migrations": OK, "redis": OK, "relay": OK}


@pytest.fixture
def engine_of():
    from mailer.db import make_engine

    engines = []

    def make(settings):
        engines.append(make_engine(settings.database_url))
        return engines[-1]

    yield make
    for e in engines:
        e.dispose()


def test_a_hanging_dependency_costs_a_probe_the_deadline_not_more(silent_port):
    """A PostgreSQL server that accepts the connection and never answers (psycopg would wait
    for ever) and a relay that never sends its greeting: the probe still answers."""
    from mailer.db import make_engine

    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/none")
    try:
        started = time.monotonic()
        checks = dependency_checks(engine, None, f"smtp://127.0.0.1:{silent_port}", timeout=0.3)
        elapsed = time.monotonic() - started
    finally:
        engine.dispose()
    assert {c.name: c.status for c in checks} == {"database": FAIL, "migrations": FAIL, "relay": FAIL}
    assert "no answer within 0.3 s" in {c.name: c for c in checks}["database"].detail
    assert elapsed < 2.0
