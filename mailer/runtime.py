"""Process-wide wiring: the settings, database and mail transport one process uses.

Web, worker, scheduler and CLI processes call :func:`configure` once at start-up (the app
factory does it); actors and commands then reach the same objects through :func:`current`.
"""
from __future__ import annotations

from dataclasses import dataclass

import mailer.models  # noqa: F401  every mapper known before the first session, in any process
from mailer.db import Database
from mailer.mail.transport import Transport, transport_from_settings
from mailer.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    transport: Transport


_current: Runtime | None = None


def configure(settings: Settings | None = None, transport: Transport | None = None) -> Runtime:
    """Make ``settings`` (default: the environment's) this process's runtime."""
    global _current
    settings = settings or get_settings()
    if _current is not None and _current.settings is settings and transport is None:
        return _current
    if _current is not None:
        _current.db.dispose()
    _current = Runtime(
        settings=settings,
        db=Database(settings.database_url, info={"suppression_keys": settings.suppression_keys}),
        transport=transport or transport_from_settings(settings),
    )
    return _current


def current() -> Runtime:
    """The runtime :func:`configure` set, configuring from the environment if none was."""
    return _current or configure()
