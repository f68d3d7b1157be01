"""Secrets out of text that is written down: token paths become their route.

Links in emails and partner links carry their secret in the path (``/u/<token>``,
``/manage/<token>/data``, ``/submit/<secret>``, ``/view/<period>/<token>``...), and a
preview's query names a subscriber. :func:`redact` rewrites every such path in a piece
of text (a log message, a full URL, a traceback) to its route and drops its query string.
Used by the request loggers' filter (:mod:`mailer.web.access_log`) and by every log line's
formatter (:mod:`mailer.logs`). Foundation: imports nothing of ours.
"""

from __future__ import annotations

import re

# A secret is the path segment after one of these prefixes (after the period for /view/).
_TOKEN_PATH = re.compile(
    r"(?P<route>/(?:u|confirm|manage|submit|preview)/|/view/[^/?#\s\"]+/)"
    r"[^/?#\s\"]+(?P<rest>[^?#\s\"]*)(?:\?[^#\s\"]*)?"
)


def redact(text: str) -> str:
    """``text`` with every token path replaced by its route, query string dropped."""
    return _TOKEN_PATH.sub(lambda m: f"{m['route']}<token>{m['rest']}", text)
