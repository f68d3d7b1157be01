"""The editors' console under ``/admin``: a blueprint as a package.

``access`` holds the login session and the ``require(permission)`` check every view
carries; ``auth`` the login, second-factor, logout and enrolment pages; ``dashboard``,
``audit`` and ``staff`` the screens. :func:`init_app` is the one thing the app factory
calls.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

import mailer.web.console.account  # noqa: F401  (routes register on bp)
import mailer.web.console.bounces  # noqa: F401  (bounces, complaints and the suppression list)
import mailer.web.console.configuration  # noqa: F401  (routes register on bp)
import mailer.web.console.groups  # noqa: F401  (the group screens)
import mailer.web.console.held_posts  # noqa: F401  (held group posts in the moderation inbox)
import mailer.web.console.imports  # noqa: F401  (routes register on bp)
import mailer.web.console.moderation  # noqa: F401  (the moderation inbox's routes register on bp)
import mailer.web.console.outbox  # noqa: F401  (routes register on bp)
import mailer.web.console.partners  # noqa: F401  (partners and topics screens)
import mailer.web.console.reasons  # noqa: F401  (rejection reason templates' routes)
import mailer.web.console.subscribers  # noqa: F401  (routes register on bp)
from mailer.settings import Settings
from mailer.web import security_headers
from mailer.web.console import (  # noqa: F401  (routes register on bp)
    access,
    audit,
    auth,
    dashboard,
    edition_preview,
    edition_send,
    editions,
    staff,
)
from mailer.web.console.blueprint import bp


def init_app(app: Flask, settings: Settings) -> None:
    """Register the console and the security headers every page carries."""
    # The session cookie of a console login lasts at most this long (the server also checks
    # the login's age and idleness at every request: see access.load_staff).
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=settings.console_session_hours)
    app.register_blueprint(bp)
    security_headers.install(app, https=settings.base_url.startswith("https://"))
