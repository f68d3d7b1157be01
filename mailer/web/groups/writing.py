"""Posting and replying from a group's web pages, under the same rules as by email.

A member (identified by the group's member cookie, see :mod:`.members`) writes a new
thread or a reply; :func:`mailer.groups.webposts.compose` turns the form into an RFC 5322
message, which is then stored in the receiver's ledger and processed by the receiver's
own job (:func:`mailer.actors.inbound.process_inbound`), run here at once: the moderation
chain, threading, the archive and delivery are exactly an emailed post's. The page then
says whether the post went out or waits for a moderator.

Limits: :data:`PER_MEMBER` posts an hour per member and :data:`PER_CLIENT` per client
address (429 with ``Retry-After``); lengths as :mod:`~mailer.groups.webposts` says.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, url_for
from sqlalchemy import select

from mailer.actors.inbound import process_inbound, router
from mailer.groups import archive, webposts
from mailer.groups.directory import address_of
from mailer.groups.models import APPROVED, HELD, GroupPost
from mailer.inbound import store
from mailer.runtime import current as rt
from mailer.validation import InvalidInput
from mailer.web.groups.archive import private, readable, thread_page
from mailer.web.groups.forms import NewThreadForm, ReplyForm
from mailer.web.helpers import client_ip
from mailer.web.limits import keyed, retry_after_text, wait_for
from mailer.web.subscribers.common import attach_error

PER_MEMBER, PER_CLIENT = 20, 60  # web posts an hour


def _too_many(seconds: int):
    page = render_template(
        "error.html",
        title="Too many messages",
        message=f"You have posted a lot in the last hour. Please try again in {retry_after_text(seconds)}.",
    )
    return page, 429, {"Retry-After": str(max(1, seconds))}


def submit(address: str, sender: str, raw: bytes) -> tuple[str, int | None]:
    """Feed a composed message to the receiver's path; (the post's state, its thread):
    ``approved``, ``held``, or ``dropped`` (the chain refused it silently)."""
    with rt().db.transaction() as s:
        route = router().route(s, address)
        if route is None:
            abort(404)  # the group went away between the page and the post
        inbound_id = store.accept(s, route, sender, raw)
    process_inbound(inbound_id)  # the job an emailed post runs, here and now; it enqueues delivery
    with rt().db.transaction() as s:
        found = s.execute(
            select(GroupPost.status, GroupPost.thread_id).where(GroupPost.inbound_message_id == inbound_id)
        ).first()
    return (found.status, found.thread_id) if found is not None else ("dropped", None)


def _wait(member) -> int:
    return wait_for(
        (f"group-post:{member.id}", PER_MEMBER),
        (f"group-post-client:{keyed(client_ip() or '')}", PER_CLIENT),
    )


SENT = {APPROVED: "posted", HELD: "held"}


def new_thread(slug: str):
    form = NewThreadForm()
    with rt().db.transaction() as s:
        group, who, refused = readable(s, slug)
        if refused:
            return refused
        member = who.member
        page = dict(group=group, reader=who, form=form)
        if member is None or not form.validate_on_submit():
            status = 400 if form.is_submitted() and member is not None else 200
            return private(group, (render_template("groups/new_thread.html", **page), status))
        if seconds := _wait(member):
            return _too_many(seconds)
        try:
            raw_args = dict(subject=form.subject.data or "", body=form.body.data or "")
            raw = webposts.compose(group, member, list_domain=rt().settings.list_domain, **raw_args)
        except InvalidInput as err:
            attach_error(form, err)
            return private(group, (render_template("groups/new_thread.html", **page), 400))
        address, sender = address_of(group, rt().settings.list_domain), member.email
    state, thread_id = submit(address, sender, raw)
    if state == APPROVED and thread_id:
        return redirect(url_for("groups.thread", slug=slug, thread_id=thread_id, sent="posted"))
    return redirect(url_for("groups.archive", slug=slug, sent=SENT.get(state, "dropped")))


def reply(slug: str, thread_id: int):
    form = ReplyForm()
    with rt().db.transaction() as s:
        group, who, refused = readable(s, slug)
        if refused:
            return refused
        member = who.member
        if member is None:
            abort(403)
        posts = archive.thread(s, group, thread_id)
        if not posts:
            abort(404)
        if not form.validate_on_submit():
            invalid = True
        else:
            invalid = False
            if seconds := _wait(member):
                return _too_many(seconds)
            live = [p for p in posts if not p.removed]
            parent = s.get(GroupPost, live[-1].id) if live else None
            root = s.get(GroupPost, thread_id)
            try:
                raw = webposts.compose(
                    group,
                    member,
                    subject="",
                    body=form.body.data or "",
                    list_domain=rt().settings.list_domain,
                    parent=parent or root,
                    root=root,
                )
            except InvalidInput as err:
                attach_error(form, err)
                invalid = True
            address, sender = address_of(group, rt().settings.list_domain), member.email
    if invalid:
        return thread_page(slug, thread_id, form=form, status=400)
    state, _ = submit(address, sender, raw)
    return redirect(url_for("groups.thread", slug=slug, thread_id=thread_id, sent=SENT.get(state, "dropped")))
