"""Fixtures, one per boundary: settings, database, transport, app and client, queue.

Database tests run on SQLite. Those where the dialect matters (locking, bulk statements,
dialect branches, migrations, concurrency) are marked ``@pytest.mark.dialects("sqlite",
"postgresql")`` (or ``BOTH_DIALECTS``) and run on PostgreSQL too when ``TEST_DATABASE_URL``
is set. Under ``CI=true`` a missing PostgreSQL or Redis fails the run instead of skipping.
Each database is migrated once per session and served by one engine for the whole run;
every test starts from empty tables.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import re

import flask
import jinja2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import mailer.models  # noqa: F401
from mailer import runtime
from mailer.boot import boot
from mailer.db import Base
from mailer.groups.search import SQLITE_TABLE as GROUP_SEARCH_TABLE
from mailer.mail.transport import MemoryTransport
from mailer.settings import PasswordHashing, Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
# Under pytest-xdist (scripts/test runs the suite on one worker per core) each worker
# process has a PostgreSQL database and a Redis database of its own: gw0 the ones named,
# gwN the database ``<name>_gwN`` (created on first use) and Redis database index + N.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_WORKER_N = int(WORKER[2:]) if WORKER.startswith("gw") and WORKER[2:].isdigit() else 0


def per_worker_database(url: str | None) -> str | None:
    """This worker's PostgreSQL database: ``url`` itself on gw0 (and without xdist)."""
    if not url or not _WORKER_N:
        return url
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.set(database=f"{u.database}_{WORKER}").render_as_string(hide_password=False)


def per_worker_redis(url: str | None) -> str | None:
    """This worker's Redis database: ``url``'s index plus the worker's number (of 16)."""
    if not url or not _WORKER_N:
        return url
    base, _, index = url.rpartition("/")
    if not index.isdigit():
        base, index = url.rstrip("/"), "0"
    return f"{base}/{(int(index) + _WORKER_N) % 16}"


PG_URL = per_worker_database(os.environ.get("TEST_DATABASE_URL"))
REDIS_URL = per_worker_redis(os.environ.get("TEST_REDIS_URL"))


def _create_worker_database() -> None:
    """Create this worker's PostgreSQL database next to the one named, if it is missing."""
    from sqlalchemy.engine import make_url

    named = os.environ["TEST_DATABASE_URL"]
    name = make_url(PG_URL).database
    engine = create_engine(named, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


# The test processes hold every imported module, mapped class and collected test for the
# whole run, and each test makes many short-lived ORM objects. With Python's default
# thresholds (700, 10, 10) the cyclic collector ran often and, in its full passes, walked
# all of that long-lived state again each time: a fixed subset on one process took 29.3 s
# of CPU against 31.5 s (medians of 2), the xdist workers of the SQLite run 64-69 s against
# 70-79 s (noisy runs, three each way). The service's own processes keep Python's defaults.
GC_THRESHOLDS = (50_000, 50, 100)


class SharedBytecode(jinja2.BytecodeCache):
    """Compiled templates kept for every Flask app this test process builds. Each app has a
    Jinja environment of its own and compiled each template again on first use (0.4 s for
    the app's 80), and the tests build many apps: the shared one per database, one per live
    server, and one wherever a test needs other settings. Jinja checks each entry against
    its template's source, so an edited template is compiled afresh."""

    def __init__(self):
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        code = self.code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


def pytest_configure(config):
    gc.set_threshold(*GC_THRESHOLDS)
    flask.Flask.jinja_options = {**flask.Flask.jinja_options, "bytecode_cache": SharedBytecode()}


def pytest_sessionstart(session):
    if PG_URL and _WORKER_N:
        _create_worker_database()


def pytest_collection_finish(session):
    """What collection built lives until the end: out of the collector's sight from here."""
    gc.collect()
    gc.freeze()


def _slow(item) -> bool:
    """Real worker processes or a headless browser: seconds each."""
    return "browser" in getattr(item, "fixturenames", ()) or any(
        item.get_closest_marker(m) for m in ("redis", "browser")
    )


def pytest_collection_modifyitems(config, items):
    """Under xdist, hand the slow tests out first, so that no worker is left with one at
    the end while the others idle (the same order on every worker: a stable sort).

    Tests are not grouped onto workers: ``xdist_group`` markers have no effect with pytest
    9.2 and pytest-xdist 3.8 (xdist still edits the test ids, which pytest no longer reads:
    pytest-dev/pytest-xdist#1386). A module-scoped fixture (a module's shared worker
    processes) therefore starts once on each worker that runs the module's tests, and the
    browser tests run side by side, one Chromium per worker."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):  # so `-m "not browser"` leaves them all out
            item.add_marker(pytest.mark.browser)
    if WORKER:
        items.sort(key=lambda item: not _slow(item))


def empty_postgres(url: str) -> None:
    """Empty every table of the migrated PostgreSQL database at ``url`` (for tests that
    start their own processes against it), keeping the schema and its revision."""
    engine = create_engine(url)
    try:
        _empty_tables(engine)
    finally:
        engine.dispose()


def need(value: str | None, what: str) -> str:
    """Skip when a service is not configured, but fail under CI where it must be."""
    if not value:
        if IN_CI:
            pytest.fail(f"{what} is not set, and CI must run these tests")
        pytest.skip(f"{what} not set")
    return value


DIALECTS = ("sqlite", "postgresql")
BOTH_DIALECTS = pytest.mark.dialects(*DIALECTS)


def pytest_generate_tests(metafunc):
    """Give every test that uses the database the dialects its ``dialects`` marker names
    (default: SQLite only). A test that parametrizes ``database_url`` itself is left alone."""
    if "database_url" not in metafunc.fixturenames:
        return
    if any("database_url" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return
    marker = metafunc.definition.get_closest_marker("dialects")
    names = marker.args if marker else ("sqlite",)
    unknown = set(names) - set(DIALECTS)
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown dialects {sorted(unknown)}")
    metafunc.parametrize(
        "database_url",
        [pytest.param(n, marks=pytest.mark.postgres) if n == "postgresql" else n for n in names],
        indirect=True,
        scope="session",
    )


@pytest.fixture(scope="session")
def database_url(request, tmp_path_factory):
    """A migrated, empty database (via Alembic, as production would have it)."""
    from mailer.schema import reset

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url = need(PG_URL, "TEST_DATABASE_URL")
    reset(url)
    return url


# The environment every test's settings share (worker processes a test starts get it too).
TEST_ENV = {
    "MAILER_ENV": "test",
    "BASE_URL": "https://digest.example.org",
    "SECRET_KEY": "test-secret-key",
    "MAIL_FROM": "End Racism This Generation <digest@ertg.example.org>",
    "WORKER_THREADS": "2",
}


# Argon2id at its smallest: staff passwords hash in microseconds, not a tenth of a second.
# Settings refuse this outside MAILER_ENV=test; tests/mailer/staff/test_staff.py checks the default cost.
FAST_HASHING = PasswordHashing(time_cost=1, memory_kib=8, parallelism=1)


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return dataclasses.replace(
        Settings.from_env(
            {
                **TEST_ENV,
                "DATABASE_URL": database_url,
                "VAR_DIR": str(tmp_path / "var"),
                # The embedded keeper's sweep would act on rows tests arrange by hand (claims of
                # "dead" workers): it waits an hour here; the keeper's own tests set theirs.
                "SEND_WATCH_SECONDS": "3600",
            }
        ),
        password_hashing=FAST_HASHING,
        console_poll_scale=0.1,  # live pages poll every 100-200 ms: browser tests wait less
    )


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def rt(settings, transport):
    """This process's runtime over a clean database (embedded queue: the settings name no
    Redis; tests that need Redis start their own processes)."""
    r = boot(settings, transport=transport)
    _empty_tables(r.db.engine)
    yield r
    _discard_queued_work()


_EMPTYING: dict[str, str] = {}  # database URL -> the PostgreSQL statements that empty it


def _emptying_sql(conn, tables: list[str]) -> str:
    """DELETE from every table, children first, and restart every sequence: what
    ``TRUNCATE ... RESTART IDENTITY`` did, for a tenth of the server's CPU on the few rows
    a test leaves (measured on empty tables: 3 ms against 30 ms, which TRUNCATE spent
    making new files for 31 tables and their indexes)."""
    url = str(conn.engine.url)
    if url not in _EMPTYING:
        sequences = conn.scalars(text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")).all()
        _EMPTYING[url] = "; ".join(
            [f"DELETE FROM {name}" for name in tables] + [f"ALTER SEQUENCE {name} RESTART" for name in sequences]
        )
    return _EMPTYING[url]


def _empty_tables(engine, attempts: int = 5) -> None:
    """Empty every table. The embedded keeper thread lives for the whole run and may be
    refreshing a heartbeat as the emptying starts; when PostgreSQL picks the emptying as
    a deadlock's victim, it is simply run again."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(_emptying_sql(conn, tables))
                else:
                    for name in tables:
                        conn.execute(text(f"DELETE FROM {name}"))
                    conn.execute(text(f"DELETE FROM {GROUP_SEARCH_TABLE}"))  # FTS5, not on the models' metadata
            return
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == attempts - 1:
                raise


def _discard_queued_work() -> None:
    """Drop the messages a test queued but never waited for, and let the ones in hand finish.

    The embedded worker lives for the whole run: a leftover message (a receipt for item 1,
    say) would otherwise run in the next test, against that test's rows with the same ids,
    or wait out a retry backoff inside the next ``queue()``.
    """
    rt = runtime.installed()
    worker = rt.queue._worker if rt is not None else None
    if worker is None:
        return
    broker = rt.queue.broker
    while True:
        broker.flush_all()
        worker.join()
        if not any(broker.queues[q].qsize() for q in broker.queues):
            return


@pytest.fixture
def session(rt):
    """A session for arranging and inspecting data; commit explicitly to make rows visible."""
    with rt.db.sessions() as s:
        yield s


@pytest.fixture(scope="session")
def _apps() -> dict:
    return {}


@pytest.fixture
def app(rt, _apps):
    """The web app over this test's runtime. One app per database serves the whole run
    (building one compiles every route and, on first use, every template): views reach the
    runtime through :func:`mailer.runtime.current`, and what the app keeps from its
    settings (secret key, cookie flags, proxies) is the same for every test's settings.
    Its config and extensions are put back after each test. A test that needs other
    settings builds its own with ``create_app(dataclasses.replace(settings, ...))``."""
    from mailer.app import create_app

    shared = _apps.get(rt.settings.database_url)
    if shared is None:
        # boot() inside create_app returns ``rt`` itself: same settings, same transport.
        shared = create_app(rt.settings, rt.transport)
        shared.config["TESTING"] = True
        _apps[rt.settings.database_url] = shared
    config, extensions = dict(shared.config), dict(shared.extensions)
    yield shared
    shared.config.clear()
    shared.config.update(config)
    shared.extensions.clear()
    shared.extensions.update(extensions)


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
    """The demo catalogue, items (dated this month) and subscribers (tests/factories.py)."""
    from tests import factories

    return factories.demo(rt)


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory) -> tuple[str, bytes]:
    """One 2048-bit RSA DKIM key for the run: (path of the PKCS#1 PEM, base64 DER public key
    as a DKIM TXT record's p= holds it). openssl makes it, as an operator would."""
    import base64
    import subprocess

    key = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return str(key), base64.b64encode(der)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory) -> tuple[str, str]:
    """One self-signed certificate for 127.0.0.1 for the run: (cert path, key path)."""
    import subprocess

    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=relay.test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


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


# Debian's Chromium, never `playwright install`. Its headless shell (package
# chromium-headless-shell, the same Chromium build without the desktop browser around it)
# is what Playwright itself runs headless: the browser tests took 31 s of Chromium CPU with
# it against 61 s with the full `chromium` (19 tests, 3 workers, back to back), 31 s of
# wall time against 50 s. The full browser serves where only it is installed.
CHROMIUMS = ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium")
CHROMIUM = next((path for path in CHROMIUMS if os.path.exists(path)), CHROMIUMS[0])
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the run, driven by Playwright (skipped without it, but a
    failure under CI, which must run the browser tests)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(None, "the playwright package")
    if not os.path.exists(CHROMIUM):
        need(None, f"{CHROMIUM} (apt-get install chromium-headless-shell)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def live_server(rt, settings, transport):
    """The app served over HTTP on loopback; yields its base URL. Plain http, so the
    session (CSRF) cookie is not marked Secure."""
    import threading

    from werkzeug.serving import make_server

    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, base_url="http://127.0.0.1"), transport)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll so shutdown() returns at once rather than after the default half second.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
