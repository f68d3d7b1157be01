"""The process's runtime: settings and everything built from them, once.

:func:`assemble` builds a :class:`Runtime` from settings (database, mail transport,
counters, queue); :func:`mailer.boot.boot` installs it. Views, actors, commands and the
scheduler all reach it the same way, through :func:`current`. Nothing here reads the
environment: only entry points turn the environment into :class:`~mailer.settings.Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import mailer.models  # noqa: F401  every mapper known before the first session, in any process
from mailer.counters import CounterStore, counters_for
from mailer.db import Database
from mailer.mail.transport import Transport, transport_from_settings
from mailer.queue import Queue
from mailer.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    transport: Transport
    counters: CounterStore
    queue: Queue


_current: Runtime | None = None


def database_info(settings: Settings) -> dict:
    """What a :class:`Database` for ``settings`` carries in every session's ``info``."""
    return {"suppression_keys": settings.suppression_keys, "totp_keys": settings.totp_keys}


def assemble(
    settings: Settings,
    *,
    transport: Transport | None = None,
    queue: Queue | None = None,
    database: Database | None = None,
) -> Runtime:
    """Build a runtime over ``settings``; ``transport``, ``queue`` and ``database`` replace
    the ones the settings would make (tests pass a memory transport; a new runtime may keep
    the old one's queue and engine)."""
    return Runtime(
        settings=settings,
        db=database or Database(settings.database_url, info=database_info(settings)),
        transport=transport or transport_from_settings(settings),
        counters=counters_for(settings.redis_url),
        queue=queue or Queue.from_settings(settings),
    )


def install(rt: Runtime) -> Runtime:
    """Make ``rt`` this process's runtime (:func:`mailer.boot.boot` calls this)."""
    global _current
    _current = rt
    return rt


def installed() -> Runtime | None:
    """This process's runtime, or None before boot."""
    return _current


def current() -> Runtime:
    """This process's runtime. Raises RuntimeError before :func:`mailer.boot.boot`."""
    if _current is None:
        raise RuntimeError("the process is not booted: an entry point must call mailer.boot.boot()")
    return _current
