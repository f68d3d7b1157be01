"""Held group posts in the moderation inbox: one post's page (its claim, who sent it, why
it was held, its text as text) and the decisions: approve, approve and trust the sender,
reject with a reason from the templates (the sender is told), discard (and ban).

A thin shell over :mod:`mailer.staff.post_moderating` (claims and the audit log) and
:mod:`mailer.groups.posting` (the post's state). Every action posts, commits, then
queues the delivery or the sender's notice, and redirects back; a refusal re-renders the
page with the reason at the top. A post's own markup is never rendered: the moderator
reads its plain text, escaped like all data.
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from mailer.actors.groups import send_post_decision, start_group_post
from mailer.content import reasons as reason_templates
from mailer.groups import directory, notices, posting
from mailer.groups.directory import GroupError
from mailer.runtime import current as rt
from mailer.staff import claims, post_moderating
from mailer.staff.permissions import ITEMS_MODERATE
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.console.forms import PlainForm
from mailer.web.console.moderation import _reject_form, moment, rejection_text
from mailer.web.console.moderation_forms import RejectForm
from mailer.web.helpers import client_ip


def _post_or_404(post_id: int):
    try:
        return post_moderating.get_post(db(), post_id)
    except GroupError:
        abort(404)


def _page(post, status: int = 200, problem: str | None = None, reject: RejectForm | None = None):
    s = db()
    reasons = reason_templates.all_reasons(s)  # the page lists them and the form offers them
    holder = claims.current(s, post_moderating.KIND, post.id, moment())
    return render_template(
        "console/moderation/post.html",
        post=post,
        address=directory.address_of(post.group, rt().settings.list_domain),
        text=posting.excerpt(post, limit=20_000),
        holder=holder,
        mine=holder is not None and holder.staff_id == g.staff.id,
        reasons=reasons,
        reject=reject or _reject_form(s, reasons),
        plain=PlainForm(),
        problem=problem,
        member=posting.is_member_post(s, post) is not None,
        rule=posting.sender_rule(s, post.group, post.author_email) if post.author_email else None,
    ), status


@bp.get("/moderation/posts/<int:post_id>")
@require(ITEMS_MODERATE)
def inbox_post(post_id: int):
    return _page(_post_or_404(post_id))


def _act(post_id: int, action, *, follow_up=None, done: str):
    """Run ``action(session)``; commit, queue ``follow_up`` and go back to the post, or
    show why not."""
    s = db()
    _post_or_404(post_id)
    try:
        action(s)
    except GroupError as err:
        s.rollback()
        # someone else's claim, or a decision already made: a conflict with another person
        return _page(_post_or_404(post_id), 409, problem=str(err))
    s.commit()
    if follow_up is not None:
        rt().queue.send(*follow_up)  # after the commit: the worker finds the decision
    flash(done, "ok")
    return redirect(url_for("console.inbox_post", post_id=post_id))


@bp.post("/moderation/posts/<int:post_id>/claim")
@require(ITEMS_MODERATE)
def inbox_post_claim(post_id: int):
    return _act(
        post_id,
        lambda s: post_moderating.claim_post(s, g.staff, post_id, now=moment(), ip=client_ip()),
        done=f"You are working on this post for the next {claims.CLAIM_MINUTES} minutes.",
    )


@bp.post("/moderation/posts/<int:post_id>/release")
@require(ITEMS_MODERATE)
def inbox_post_release(post_id: int):
    return _act(
        post_id, lambda s: post_moderating.release_post(s, g.staff, post_id, ip=client_ip()), done="You released it."
    )


@bp.post("/moderation/posts/<int:post_id>/approve")
@require(ITEMS_MODERATE)
def inbox_post_approve(post_id: int):
    trust = request.form.get("trust") == "1"
    return _act(
        post_id,
        lambda s: post_moderating.approve_post(s, g.staff, post_id, trust=trust, now=moment(), ip=client_ip()),
        follow_up=(start_group_post, post_id),
        done="Approved: it goes to the members." + (" Its sender's later posts will not be held." if trust else ""),
    )


@bp.post("/moderation/posts/<int:post_id>/reject")
@require(ITEMS_MODERATE)
def inbox_post_reject(post_id: int):
    s = db()
    post = _post_or_404(post_id)
    form = _reject_form(s)
    if not form.validate_on_submit():
        return _page(post, 400, reject=form)
    text = rejection_text(s, form, "the sender")
    if text is None:
        return _page(post, 400, reject=form)
    return _act(
        post_id,
        lambda s: post_moderating.reject_post(s, g.staff, post_id, text, now=moment(), ip=client_ip()),
        follow_up=(send_post_decision, notices.REJECTED, post_id),
        done="Rejected. The sender is told the reason.",
    )


@bp.post("/moderation/posts/<int:post_id>/discard")
@require(ITEMS_MODERATE)
def inbox_post_discard(post_id: int):
    ban = request.form.get("ban") == "1"
    return _act(
        post_id,
        lambda s: post_moderating.discard_post(s, g.staff, post_id, ban=ban, now=moment(), ip=client_ip()),
        done="Discarded" + (": the sender's later mail to the group is dropped." if ban else "."),
    )
