"""Who is reading a group's web pages: a member (by the group's member cookie), console
staff allowed to moderate groups, or anyone.

Members have no password. Every email from a group carries the member's personal link
"View this thread and your group on the web" (``/groups/<slug>/enter/<token>``, a
``group-web`` token); following it sets a member cookie for that group only (its path is
``/groups/<slug>``): signed (the same token, re-issued), ``HttpOnly``, ``SameSite=Lax``,
``Secure`` over HTTPS, lasting ``MANAGE_LINK_MAX_AGE_DAYS``. Leaving the group, or any
change that bumps the member's ``token_version``, ends it.
"""

from __future__ import annotations

import time

from flask import current_app, redirect, request, url_for

from mailer.groups import directory, service
from mailer.groups.archive import Reader
from mailer.groups.models import ACTIVE, Group
from mailer.runtime import current as rt
from mailer.staff.models import StaffUser
from mailer.staff.permissions import GROUPS_MODERATE, allows
from mailer.web.staff_session import logged_in
from mailer.web.subscribers.common import link_error, tokens
from subscribers.tokens import TokenError

COOKIE = "group_member"


def _max_age() -> int:
    return rt().settings.manage_link_max_age_days * 86400


def cookie_path(slug: str) -> str:
    return f"/groups/{slug}"


def reader(s, group: Group) -> Reader:
    """The reader of this request for ``group``."""
    member = None
    token = request.cookies.get(COOKIE)
    if token:
        try:
            found = service.member_from_token(s, tokens(), "group-web", token, _max_age())
        except TokenError:
            found = None
        if found is not None and found.group_id == group.id and found.status == ACTIVE:
            member = found
    return Reader(member=member, staff=staff_user(s) is not None)


def staff_user(s) -> StaffUser | None:
    """The console account logged in on this browser, if its role may moderate groups."""
    user = logged_in(s, current_app.extensions.get("console.clock", time.time)())
    return user if user is not None and allows(user.role, GROUPS_MODERATE) else None


def enter(slug: str, token: str):
    """The personal link in a group email: set the member cookie, show the post."""
    with rt().db.transaction() as s:
        group = directory.find_group(s, slug)
        try:
            member = service.member_from_token(s, tokens(), "group-web", token, _max_age())
        except TokenError as err:
            return link_error(err, "group-web")
        if group is None or member.group_id != group.id:
            return link_error(TokenError("This link is for another group."), "group-web")
        if member.status != ACTIVE:
            return link_error(TokenError("This address is no longer a member of the group.", "revoked"), "group-web")
        fresh = tokens().make("group-web", member.id, member.token_version)
    post = request.args.get("post", "")
    target = (
        url_for("groups.post", slug=slug, post_id=int(post))
        if post.isdigit() and len(post) < 12
        else url_for("groups.archive", slug=slug)
    )
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        fresh,
        max_age=_max_age(),
        path=cookie_path(slug),
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),  # as the session's: HTTPS base URL
    )
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not travel on
    return response


def sign_out(slug: str):
    """Forget the member cookie on this browser (POST, CSRF-checked)."""
    response = redirect(url_for("groups.archive", slug=slug))
    response.delete_cookie(COOKIE, path=cookie_path(slug), httponly=True, samesite="Lax")
    return response
