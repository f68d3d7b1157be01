"""Entry module of ``dramatiq mailer.worker``: importing it boots the process.

Booting on import is this module's one purpose (the ``dramatiq`` command imports it and
then uses the broker it set); no other module imports it. Settings come from the
environment, as in every entry point. It also starts the process's delivery keeper
(heartbeats and sweeps, :func:`mailer.actors.digest.keep`) and makes stopping graceful
however many SIGTERMs arrive (a service manager's group stop sends two), and settles the
cyclic garbage collector once the process has booted (:mod:`mailer.collector`).

Under ``mailer worker`` gevent has patched the process before this module is imported, so
its threads (Dramatiq's, the keeper, the warm-up below) are greenlets: see
:mod:`mailer.greenlets`.
"""

import atexit
import signal
import threading

from mailer.actors.digest import keep
from mailer.boot import boot
from mailer.collector import settle_collector
from mailer.delivery.sending import flush_backlog, stopping
from mailer.logs import configure_logging
from mailer.mail.rendering import render_engines
from mailer.metrics.workers import serve_metrics
from mailer.settings import Settings

_rt = boot(Settings.from_env())
configure_logging(_rt.settings)
broker = _rt.queue.broker
serve_metrics(broker, _rt.settings)  # Dramatiq's Prometheus middleware, when WORKER_METRICS is set


def _graceful(previous):
    """A SIGTERM/SIGHUP handler: batches end after the message in the relay's hands
    (``stopping``), and only the first signal reaches Dramatiq's handler, whose second
    call would exit at once, mid-message."""

    def handler(signum, frame):
        first = not stopping.is_set()
        stopping.set()
        if first and callable(previous):
            previous(signum, frame)

    return handler


if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
    for _sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(_sig, _graceful(signal.getsignal(_sig)))
threading.Thread(target=keep, args=(threading.Event(),), name="delivery-keeper", daemon=True).start()
# Every worker renders (an edition, a notice), and the first render would wait for MJML's
# compiler and the CSS inliner to import (0.37 s of the first digest batch's 0.54 s here).
# They import beside the worker's start instead, so it is ready as soon as before.
threading.Thread(target=render_engines, name="render-warm-up", daemon=True).start()
atexit.register(flush_backlog, _rt.db)  # outcomes kept while the database was away
# Last: what the boot made lives as long as the process (the render warm-up's imports, in
# their own greenlet or thread, may land on either side; modules are long-lived either way).
settle_collector()
