"""Request logs name the route, never the token in it.

Links in emails and partner links carry their secret in the path (``/u/<token>``,
``/manage/<token>/data``, ``/submit/<secret>``, ``/view/<period>/<token>``...), and a
preview's query names a subscriber. A log line is read by more people, and kept longer,
than the secret should be: :class:`RedactTokens` rewrites every such path in a record to
its route (``/manage/<token>/data``) and drops its query string, whichever server logs it
(Werkzeug's development server, gunicorn's access log, Flask's own error log).
"""

from __future__ import annotations

import logging

from mailer.redaction import redact  # the one rewrite, shared with mailer.logs

# The loggers that write request paths: Werkzeug's development server and gunicorn's access
# log; the app's own logger is added by install() (Flask logs "Exception on /path").
REQUEST_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


class RedactTokens(logging.Filter):
    """Rewrites a record's message (formatted with its arguments) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactTokens()


def install(*extra: logging.Logger) -> None:
    """Put the filter on the request loggers and ``extra`` ones (idempotent)."""
    for logger in (*(logging.getLogger(n) for n in REQUEST_LOGGERS), *extra):
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
