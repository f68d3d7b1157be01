"""Logging for every process: one line per event, text or JSON, with the ids in play.

Every entry point (the web app factory, ``mailer worker`` and the worker processes,
``scheduler.py``, the ``mailer`` CLI) calls :func:`configure_logging` once with its
settings; calling it again replaces the handler it installed, never adds a second one.

- ``LOG_FORMAT=text`` (default): ``time level logger [ids]: message``; ``LOG_FORMAT=json``:
  one JSON object per line (python-json-logger) with ``time``, ``level``, ``logger``,
  ``message``, the ids below and any ``extra=`` fields the call passed.
- **Ids**: ``request_id`` (set per web request, see :mod:`mailer.web.metrics`),
  ``edition_id`` and ``delivery_id`` (set by the sending code through :func:`bind`). They
  live in context variables, so each thread and each request sees its own; Dramatiq
  messages start clean (:class:`mailer.metrics.workers.ClearIds`).
- **Redaction**: the finished line (message, arguments and traceback alike) goes through
  :func:`mailer.redaction.redact` (as the request loggers' filter in
  :mod:`mailer.web.access_log` does), so a token path or a full manage URL is written
  as its route (``/manage/<token>``), whoever logged it.

Foundation: imports nothing of the domain or the edges.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

from mailer.redaction import redact

FORMATS = ("text", "json")
IDS = ("request_id", "edition_id", "delivery_id")
_vars: dict[str, contextvars.ContextVar] = {name: contextvars.ContextVar(name, default=None) for name in IDS}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s"


def bind(**ids: Any) -> None:
    """Set ids for the log lines that follow in this context (thread, request, message):
    ``bind(edition_id=3, delivery_id=None)``. None clears one."""
    for name, value in ids.items():
        _vars[name].set(value)


def clear() -> None:
    """Forget every id (a new request or queue message begins)."""
    for var in _vars.values():
        var.set(None)


def current() -> dict[str, Any]:
    """The ids set in this context (unset ones left out)."""
    return {name: var.get() for name, var in _vars.items() if var.get() is not None}


class ContextIds(logging.Filter):
    """Puts the context's ids on every record: each as an attribute (None when unset) and
    ``ids``, a ready-made `` [request_id=... edition_id=...]`` for the text format."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current()
        for name in IDS:
            if not hasattr(record, name):
                setattr(record, name, ids.get(name))
        record.ids = (" [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]") if ids else ""
        return True


class RedactedText(logging.Formatter):
    """The text formatter, its whole output redacted (tracebacks can quote URLs too)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _json_formatter() -> logging.Formatter:
    # loaded only when LOG_FORMAT=json asks for it
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    class RedactedJson(JsonFormatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    return RedactedJson(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        # ``ids`` is the text format's rendering; the ids themselves are fields already.
        reserved_attrs=[*RESERVED_ATTRS, "taskName", "ids"],
        json_ensure_ascii=False,
    )


class _Handler(logging.StreamHandler):
    """Marks the handler :func:`configure_logging` owns, so a second call replaces it."""


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return _json_formatter()
    return RedactedText(TEXT_FORMAT)


def configure_logging(settings=None, *, stream=None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (default: stderr at call time) in
    ``settings.log_format`` at ``settings.log_level``, with ids and redaction. Replaces
    the handler an earlier call installed and any ``basicConfig`` handler on stderr;
    leaves other handlers (pytest's capture, an operator's own) alone. Returns the handler."""
    fmt = getattr(settings, "log_format", "text")
    level = getattr(settings, "log_level", "INFO")
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Handler) or (
            type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__)
        ):
            root.removeHandler(h)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextIds())
    root.addHandler(handler)
    root.setLevel(level)
    # Records that go to other handlers (gunicorn's, pytest's) still carry the ids.
    for h in root.handlers:
        if not any(isinstance(f, ContextIds) for f in h.filters):
            h.addFilter(ContextIds())
    return handler
