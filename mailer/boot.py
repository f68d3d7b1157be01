"""Start-up: the one way a process is assembled from its settings.

Every entry point calls :func:`boot` once with settings it read from the environment:
``wsgi.py`` and the ``mailer`` CLI through :func:`mailer.app.create_app`, ``dramatiq
mailer.worker`` in :mod:`mailer.worker`, and ``scheduler.py``. Tests call it with their own
settings and a memory transport. Nothing else builds a database, transport or broker.
"""

from __future__ import annotations

import dramatiq

from mailer import runtime
from mailer.actors import JOBS
from mailer.actors.digest import keep, requeue_pending
from mailer.actors.groups import requeue_group_posts
from mailer.mail.transport import Transport
from mailer.metrics.workers import add_log_context
from mailer.runtime import Runtime
from mailer.settings import Settings
from mailer.staff import passwords


def boot(settings: Settings, *, transport: Transport | None = None) -> Runtime:
    """Assemble the runtime for ``settings`` (and ``transport``, default the one the settings
    name), declare the jobs on its broker, set the staff password hashing cost, and make it
    this process's runtime.

    Booting again with the same settings and transport returns the same runtime. With
    other settings, the old runtime's database engine is kept when it serves the same URL
    with the same keys (else closed), and its queue (and any worker threads) is kept when
    the new settings would build the same one (else stopped): re-booting, as tests and
    apps with adjusted settings do, opens no second engine.
    """
    old = runtime.installed()
    if old is not None and old.settings == settings and transport in (None, old.transport):
        return old
    queue = database = None
    if old is not None:
        if old.db.url == settings.database_url and old.db.info == runtime.database_info(settings):
            database = old.db
        else:
            old.db.dispose()
        if old.queue.fits(settings):
            queue = old.queue
        else:
            old.queue.stop()
    passwords.use_cost(settings.password_hashing)
    rt = runtime.assemble(settings, transport=transport, queue=queue, database=database)
    if queue is None:  # a new broker: each message starts with no edition/delivery ids in its logs
        add_log_context(rt.queue.broker)
    rt.queue.declare(JOBS)
    rt.queue.on_start = _requeue
    rt.queue.keeper = keep  # embedded mode: claims kept alive and dead ones taken back, as in a worker
    # The `dramatiq` command takes the broker of the module it imports from here.
    dramatiq.set_broker(rt.queue.broker)
    return runtime.install(rt)


def _requeue() -> None:
    """What an earlier process left undone: digest deliveries, then group posts."""
    requeue_pending()
    requeue_group_posts()
