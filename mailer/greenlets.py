"""Whether this process's threads are greenlets, and how a call outside Python's socket
module then waits for a file descriptor.

``mailer worker`` runs Dramatiq's processes under gevent (``python -m gevent.monkey``, as
``dramatiq-gevent`` does: ``socket``, ``threading``, ``select`` and the rest are patched
before anything else is imported): a sending worker spends its time waiting for the relay
and the database, and greenlets wait without the GIL hand-overs and context switches that
threads pay for each reply.
Python's socket calls, psycopg's cursors and Redis then wait cooperatively by themselves.
Two calls of ours do not go through them and would stall every greenlet of the process
while they wait: an outcome written through libpq directly
(:class:`mailer.delivery.sending.Recorder`) and a relay socket whose timeout the kernel
keeps (:mod:`mailer.mail.relay_socket`). They ask :func:`fd_waiter` which way to wait.

Nothing here imports gevent unless the process has already loaded and applied it, so
threads (the web app, the CLI, the embedded worker, tests, ``dramatiq mailer.worker``,
``mailer worker`` over SQLite) are unaffected.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

FdWait = Callable[[int], object]


@functools.cache
def fd_waiter() -> tuple[FdWait, FdWait] | None:
    """gevent's ``(wait_read, wait_write)`` for a file descriptor when gevent has patched
    this process's sockets, else None (threads: block in C as usual). Decided at the first
    call, which in a worker comes after the patching."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return None
    from gevent.socket import wait_read, wait_write  # only where gevent already runs the process

    return wait_read, wait_write


def greenlets() -> bool:
    """True when this process's threads are greenlets (see the module's docstring)."""
    return fd_waiter() is not None
