"""The subscriber pages as a blueprint: subscribe, confirm, "email me my link",
unsubscribe (:mod:`.pages`) and the preference centre (:mod:`.preferences`).

This module makes the blueprint and is its table of URLs; the modules hold the views.
The name stays "subscribers", so ``url_for("subscribers.manage", ...)`` in templates and
code is unchanged; :mod:`subscribers.links` builds the same paths for emails (a test
checks they agree). A form whose CSRF token fails gets the app's error page
(:mod:`mailer.app`).
"""

from __future__ import annotations

from flask import Blueprint

from mailer.web.subscribers import pages, preferences

bp = Blueprint("subscribers", __name__)

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]
_RULES = (
    ("/", pages.home, GET),
    ("/subscribe", pages.subscribe, BOTH),
    ("/subscribe/check-email", pages.check_email, GET),
    ("/confirm/<token>", pages.confirm, BOTH),
    ("/manage", pages.request_link, BOTH),
    ("/u/<token>", pages.unsubscribe, BOTH),  # CSRF-exempt for RFC 8058 one-click (see pages)
    ("/manage/<token>", preferences.manage, BOTH),
    ("/manage/<token>/pause", preferences.pause, POST),
    ("/manage/<token>/resume", preferences.resume, POST),
    ("/manage/<token>/resubscribe", preferences.resubscribe, POST),
    ("/manage/<token>/revoke", preferences.revoke, POST),
    ("/manage/<token>/renew", preferences.renew, POST),
    ("/manage/<token>/data", preferences.download, GET),
    ("/manage/<token>/erase", preferences.erase, BOTH),
)
for _path, _view, _methods in _RULES:
    bp.add_url_rule(_path, view_func=_view, methods=_methods)  # endpoint: the view's name
