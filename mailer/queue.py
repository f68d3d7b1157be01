"""Enqueueing from web requests and CLI commands.

In embedded mode the first enqueue starts this process's worker threads, so the message is
worked off here; with Redis it only goes onto the queue.
"""
from __future__ import annotations

from mailer.broker import ensure_embedded_worker


def enqueue(actor, *args) -> None:
    ensure_embedded_worker()
    actor.send(*args)
