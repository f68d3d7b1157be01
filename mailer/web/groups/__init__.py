"""The public group pages as a blueprint: a group's page with its join form, confirming
a join, one-click leave (RFC 8058) and a member's delivery choice (:mod:`.pages`); a moderator's held posts, reached by the
link in each "waiting for a moderator" email (:mod:`.moderation`).

The paths are the ones :mod:`mailer.groups.links` builds for emails (a test checks they
agree). Archives live under ``/groups/<slug>/archive`` and ``/groups/<slug>/posts/<id>``
(the archive's own module, not here yet).
"""

from __future__ import annotations

from flask import Blueprint

from mailer.web.groups import moderation, pages

bp = Blueprint("groups", __name__)

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]
_RULES = (
    ("/groups/<slug>", pages.group_page, BOTH),
    ("/groups/<slug>/check-email", pages.check_email, GET),
    ("/groups/confirm/<token>", pages.confirm, BOTH),
    ("/groups/leave/<token>", pages.leave, BOTH),  # CSRF-exempt for RFC 8058 one-click (see pages)
    ("/groups/member/<token>", pages.member, BOTH),  # the person's one preference page
    ("/groups/member/<token>/leave", pages.leave_from_page, POST),
    ("/groups/moderate/<token>", moderation.held, GET),
    ("/groups/moderate/<token>/<int:post_id>", moderation.decide, POST),
)
for _path, _view, _methods in _RULES:
    bp.add_url_rule(_path, view_func=_view, methods=_methods)
