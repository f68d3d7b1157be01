"""Process-wide wiring: the settings, database and mail transport one process uses.

Web, worker, scheduler and CLI processes call :func:`configure` once at start-up (the app
factory does it); actors and commands then reach the same objects through :func:`current`.
"""
from __future__ import annotations

from dataclasses import dataclass

import mailer.models  # noqa: F401  every mapper known before the first session, in any process
from mailer.db import Database
from mailer.delivery.transport import Transport, transport_from_settings
from mailer.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    transport: Transport


_current: Runtime | None = None
_opened: Database | None = None  # the Database configure opened itself, so disposes of


def configure(settings: Settings | None = None, transport: Transport | None = None,
              database: Database | None = None) -> Runtime:
    """Make ``settings`` (default: the environment's) this process's runtime.

    ``database`` lends an open :class:`Database` (its owner disposes of it). Without one, the
    current runtime's Database is kept when it serves the same URL with the same keys, so
    reconfiguring (a new transport, changed settings) does not open a new engine; otherwise
    a new one is opened and the one this function opened before is disposed of.
    """
    global _current, _opened
    settings = settings or get_settings()
    if _current is not None and _current.settings is settings and transport is None and database is None:
        return _current
    info = {"suppression_keys": settings.suppression_keys}
    if database is None and _current is not None and _current.db.url == settings.database_url \
            and _current.db.info == info:
        database = _current.db
    if database is None:
        database = Database(settings.database_url, info=info)
        opened = database
    else:
        opened = _opened if database is _opened else None
    if _opened is not None and _opened is not database:
        _opened.dispose()
    _opened = opened
    _current = Runtime(
        settings=settings,
        db=database,
        transport=transport or transport_from_settings(settings),
    )
    return _current


def current() -> Runtime:
    """The runtime :func:`configure` set, configuring from the environment if none was."""
    return _current or configure()
