"""A moderator's page of a group's held posts: approve, approve and trust the sender,
reject with a reason (the sender is told), discard, discard and ban.

Reached by the personal link in each "waiting for a moderator" email (a ``group-moderate``
token naming the moderator's membership). The link works for ``GROUP_HOLD_DAYS`` (a held
post lives no longer) and only while its holder is still an owner or moderator of the
group. Decisions are the domain's (:mod:`mailer.groups.posting`): the first moderator to
decide wins, the second is told it was decided. Posts are shown as text, never markup.
"""

from __future__ import annotations

from flask import render_template, request

from mailer.actors.groups import send_post_decision, start_group_post
from mailer.groups import notices, posting, service
from mailer.groups.directory import GroupError
from mailer.runtime import current as rt
from mailer.web.groups.forms import DecisionForm
from mailer.web.subscribers.common import link_error, tokens
from subscribers.tokens import TokenError

PAGE = 50  # held posts on one page, oldest first


def _moderator(s, token: str):
    """The membership the link names, if it may still moderate; else an error response."""
    max_age = rt().settings.groups.hold_days * 86400
    try:
        member = service.member_from_token(s, tokens(), "group-moderate", token, max_age)
    except TokenError as err:
        return None, link_error(err, "group-moderate")
    if not service.is_moderator(member):
        page = render_template(
            "error.html", title="Not a moderator", message="This address no longer moderates this group."
        )
        return None, (page, 403)
    return member, None


def _page(s, member, token, notice=None, error=None, status=200):
    posts = posting.held_posts(s, member.group)
    shown = [(p, posting.excerpt(p)) for p in posts[:PAGE]]
    return render_template(
        "groups/moderate.html",
        group=member.group,
        moderator=member,
        posts=shown,
        more=max(0, len(posts) - PAGE),
        token=token,
        form=DecisionForm(formdata=None),
        notice=notice,
        error=error,
        hold_days=rt().settings.groups.hold_days,
    ), status


def held(token: str):
    with rt().db.transaction() as s:
        member, refused = _moderator(s, token)
        if refused:
            return refused
        return _page(s, member, token)


ACTIONS = ("approve", "trust", "reject", "discard", "ban")


def decide(token: str, post_id: int):
    follow_up = None
    with rt().db.transaction() as s:
        member, refused = _moderator(s, token)
        if refused:
            return refused
        form = DecisionForm()
        action = request.form.get("action", "")
        if not form.validate_on_submit():
            return _page(s, member, token, error="Your session expired; press the button again.", status=400)
        if action not in ACTIONS:
            return _page(s, member, token, error="Press one of the buttons under the message.", status=400)
        by = f"moderator:{member.email}"
        try:
            if action in ("approve", "trust"):
                posting.approve(
                    s,
                    post_id,
                    by=by,
                    trust=action == "trust",
                    group=member.group,
                    attachment_max_bytes=rt().settings.groups.archive_attachment_max_bytes,
                )
                follow_up, notice = (start_group_post, post_id), f"Approved post {post_id}: it goes to the members."
            elif action == "reject":
                posting.reject(s, post_id, by=by, reason=form.reason.data or "", group=member.group)
                follow_up = (send_post_decision, notices.REJECTED, post_id)
                notice = f"Rejected post {post_id}; its sender is told why."
            else:
                posting.discard(s, post_id, by=by, ban=action == "ban", group=member.group)
                notice = f"Discarded post {post_id}" + (" and banned its sender." if action == "ban" else ".")
        except GroupError as err:
            # Every refusal comes before the decision's first write, so nothing is undone here
            # (and no savepoint: on SQLite it would turn the reads before it into a snapshot
            # that a worker's commit makes stale).
            return _page(s, member, token, error=str(err), status=409)
        response = _page(s, member, token, notice=notice)
    if follow_up:
        rt().queue.send(*follow_up)  # after the commit: the worker finds the decision
    return response
