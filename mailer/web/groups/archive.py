"""A group's archive on the web: its threads (newest activity first, paginated, with
search), a thread's posts in order, a permalink per post (the ``Archived-At`` of every
copy), attachments, and a moderator's removal of a post.

Who may read is the domain's rule (:func:`mailer.groups.archive.can_read`); who is
reading comes from :mod:`.members`. Posts are text, escaped by the templates, with
addresses masked; sender HTML is never rendered. Nothing changes on a GET.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, abort, make_response, redirect, render_template, request, url_for

from mailer.groups import archive, directory, removal, search
from mailer.groups.directory import GroupError
from mailer.groups.models import MEMBERS_ONLY
from mailer.paging import page_count
from mailer.runtime import current as rt
from mailer.staff.audit import record
from mailer.web.groups.forms import RemoveForm, ReplyForm
from mailer.web.groups.members import reader, staff_user
from mailer.web.helpers import client_ip, page_number

PER_PAGE = 25
# Served with their own type only when it cannot run in our origin; anything else is bytes.
SAFE_TYPES = {
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "text/plain",
    "text/csv",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def readable(s, slug: str):
    """(group, reader, None) or (.., .., the refusal page) for this request."""
    group = directory.find_group(s, slug)
    if group is None:
        abort(404)
    who = reader(s, group)
    if archive.can_read(group, who):
        return group, who, None
    page = render_template("groups/archive_closed.html", group=group)
    return group, who, (page, 403, {"Cache-Control": "private, no-store"})


def private(group, response):
    """Members-only pages are never cached by anyone on the way, nor indexed."""
    response = make_response(response)
    if group.visibility == MEMBERS_ONLY:
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["X-Robots-Tag"] = "noindex"
    return response


def archive_page(slug: str):
    with rt().db.transaction() as s:
        group, who, refused = readable(s, slug)
        if refused:
            return refused
        page, query = page_number(), " ".join(request.args.get("q", "").split())[:200]
        if query:
            results, total = archive.search_posts(s, group, who, query, page=page, per_page=PER_PAGE)
            threads = []
        else:
            threads, total = archive.threads(s, group, page=page, per_page=PER_PAGE)
            results = []
        html = render_template(
            "groups/archive.html",
            group=group,
            reader=who,
            threads=threads,
            results=results,
            query=query,
            page=page,
            pages=page_count(min(total, search.COUNT_CAP), PER_PAGE),
            total=total,
            cap=search.COUNT_CAP,
        )
    return private(group, html)


def thread_page(slug: str, thread_id: int, form=None, status: int = 200):
    with rt().db.transaction() as s:
        group, who, refused = readable(s, slug)
        if refused:
            return refused
        posts = archive.thread(s, group, thread_id)
        if not posts:
            abort(404)
        html = render_template(
            "groups/thread.html",
            group=group,
            reader=who,
            posts=posts,
            subject=next((p.subject for p in posts if p.subject), "(no subject)"),
            thread_id=thread_id,
            form=form or ReplyForm(formdata=None),
            moderate=archive.can_moderate(group, who),
            sent=request.args.get("sent", ""),
        )
    return private(group, (html, status))


def post_page(slug: str, post_id: int, form=None, error=None, status: int = 200):
    with rt().db.transaction() as s:
        group, who, refused = readable(s, slug)
        if refused:
            return refused
        found = archive.archived_post(s, group, post_id)
        if found is None:
            abort(404)
        shown = archive.view(s, found)
        html = render_template(
            "groups/post.html",
            group=group,
            reader=who,
            post=shown,
            thread_posts=archive.thread_size(s, group, shown.thread_id),
            moderate=archive.can_moderate(group, who),
            form=form or RemoveForm(formdata=None),
            error=error,
            removed=request.args.get("removed") == "1",
        )
    return private(group, (html, status))


def remove_post(slug: str, post_id: int):
    """A moderator (of the group, or console staff) removes a post from the archive;
    audited. Refusals come before the first write, so nothing is undone."""
    form = RemoveForm()
    error, status = None, 200
    with rt().db.transaction() as s:
        group, who, refused = readable(s, slug)
        if refused:
            return refused
        if not archive.can_moderate(group, who):
            abort(403)
        if form.validate_on_submit():
            user = staff_user(s) if who.staff else None
            actor = user if user is not None else f"moderator:{who.member.email}"
            by = f"staff:{user.username}" if user is not None else actor
            try:
                post = removal.remove_post(s, group, post_id, by=by, reason=form.reason.data or "")
            except GroupError as err:
                error, status = str(err), 409
            else:
                after = {"status": post.status, "reason": post.decision_reason, "group": group.slug}
                record(s, actor, "groups.post.remove", post, {"status": "approved"}, after, ip=client_ip())
        else:
            error, status = "Your session expired; press the button again.", 400
    if error:
        return post_page(slug, post_id, form=form, error=error, status=status)
    return redirect(url_for("groups.post", slug=slug, post_id=post_id, removed=1))


def attachment(slug: str, attachment_id: int, name: str):
    with rt().db.transaction() as s:
        group, _, refused = readable(s, slug)
        if refused:
            return refused
        found = archive.attachment(s, group, attachment_id)
        if found is None:
            abort(404)
        data, filename, kind = found.data, found.filename, found.content_type
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    response = Response(data, mimetype=kind if kind in SAFE_TYPES else "application/octet-stream")
    # RFC 6266: an ASCII name, and the real one as RFC 5987 filename*.
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    response.headers["Content-Disposition"] = disposition
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = (
        "private, no-store" if group.visibility == MEMBERS_ONLY else "public, max-age=300"
    )
    return response
