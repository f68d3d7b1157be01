"""The public group pages as a blueprint: the directory of groups (``/groups``), a group's page with its join form, confirming
a join, one-click leave (RFC 8058) and a member's delivery choice (:mod:`.pages`); a moderator's held posts, reached by the
link in each "waiting for a moderator" email (:mod:`.moderation`).

The paths are the ones :mod:`mailer.groups.links` builds for emails (a test checks they
agree). The archive (:mod:`.archive`): ``/groups/<slug>/archive`` (threads and search),
``/groups/<slug>/threads/<id>``, ``/groups/<slug>/posts/<id>`` (every copy's
``Archived-At``) and attachments; members reach it through ``/groups/<slug>/enter/<token>``
(:mod:`.members`) and post and reply there (:mod:`.writing`).
"""

from __future__ import annotations

from flask import Blueprint

from mailer.web.groups import archive, members, moderation, pages, writing

bp = Blueprint("groups", __name__)

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]
_RULES = (
    ("/groups", pages.directory_page, GET),
    ("/groups/<slug>", pages.group_page, BOTH),
    ("/groups/<slug>/check-email", pages.check_email, GET),
    ("/groups/confirm/<token>", pages.confirm, BOTH),
    ("/groups/leave/<token>", pages.leave, BOTH),  # CSRF-exempt for RFC 8058 one-click (see pages)
    ("/groups/member/<token>", pages.member, BOTH),  # the person's one preference page
    ("/groups/member/<token>/leave", pages.leave_from_page, POST),
    ("/groups/moderate/<token>", moderation.held, GET),
    ("/groups/moderate/<token>/<int:post_id>", moderation.decide, POST),
)
# The archive's rules name their endpoints (groups.archive, groups.thread, ...).
_ARCHIVE = (
    ("/groups/<slug>/archive", "archive", archive.archive_page, GET),
    ("/groups/<slug>/threads/<int:thread_id>", "thread", archive.thread_page, GET),
    ("/groups/<slug>/threads/<int:thread_id>/reply", "reply", writing.reply, POST),
    ("/groups/<slug>/posts/<int:post_id>", "post", archive.post_page, GET),
    ("/groups/<slug>/posts/<int:post_id>/remove", "remove_post", archive.remove_post, POST),
    ("/groups/<slug>/attachments/<int:attachment_id>/<path:name>", "attachment", archive.attachment, GET),
    ("/groups/<slug>/new", "new_thread", writing.new_thread, BOTH),
    ("/groups/<slug>/enter/<token>", "enter", members.enter, GET),
    ("/groups/<slug>/sign-out", "sign_out", members.sign_out, POST),
)
for _path, _view, _methods in _RULES:
    bp.add_url_rule(_path, view_func=_view, methods=_methods)
for _path, _endpoint, _view, _methods in _ARCHIVE:
    bp.add_url_rule(_path, _endpoint, view_func=_view, methods=_methods)
