"""Public group pages: the group's page and join form, confirm, one-click leave, a
member's delivery choice (web shell only).

Rules live in :mod:`mailer.groups.service`; this module parses requests, owns the
transaction, and queues emails after the commit. Like the digest's pages, nothing changes
on a GET (mail gateways fetch every link), and the join form says the same whether or not
the address is already a member.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from mailer.actors.groups import send_group_email
from mailer.groups import directory, notices, service
from mailer.groups.models import ACTIVE, ANNOUNCE_ONLY
from mailer.runtime import current as rt
from mailer.validation import InvalidInput, email_address
from mailer.web import csrf
from mailer.web.groups.forms import JoinForm
from mailer.web.subscribers import preferences
from mailer.web.subscribers.common import allowed, attach_error, consent_ip, group_rows, link_error, tokens, too_many
from mailer.web.subscribers.forms import ButtonForm, delivery_form
from subscribers import service as subscriber_service
from subscribers.tokens import TokenError

POLICY_WORDS = {
    "open": "Members post freely; messages from anyone else wait for a moderator.",
    "moderated": "A moderator approves members' messages before they go out.",
    "all-moderated": "A moderator approves every message before it goes out.",
    "announce-only": "Only the group's owners and moderators post; members receive.",
}


def directory_page():
    """Every group, by name, with what it is for and how many people are in it: where a
    staff network or practice finds the groups it can join (each group's own page has the
    join form). Members-only groups are listed too: their archive is private, not their
    existence."""
    with rt().db.transaction() as s:
        groups = sorted(directory.list_groups(s), key=lambda pair: pair[0].name.lower())
        return render_template("groups/directory.html", groups=groups, policy=POLICY_WORDS)


def _page(group, form, status=200):
    address = directory.address_of(group, rt().settings.list_domain)
    page = dict(group=group, form=form, address=address, policy=POLICY_WORDS.get(group.posting_policy, ""))
    page["posts_by_email"] = group.posting_policy != ANNOUNCE_ONLY
    return render_template("groups/group.html", **page), status


def group_page(slug: str):
    with rt().db.transaction() as s:
        group = directory.find_group(s, slug)
        if group is None:
            abort(404)
        form = JoinForm()
        if not form.validate_on_submit():
            return _page(group, form, 400 if request.method == "POST" else 200)
        try:
            address = email_address("email", form.email.data)
        except InvalidInput as err:
            attach_error(form, err)
            return _page(group, form, 400)
        client, address_ok = allowed(address)
        if not client.allowed:
            return too_many(client)
        if not address_ok:
            # Same page as a success: a flood of requests must not flood the inbox either.
            return redirect(url_for("groups.check_email", slug=group.slug))
        try:
            with s.begin_nested():
                outcome = service.request_join(
                    s, group, address, name=form.name.data or "", delivery=form.delivery.data, ip=consent_ip()
                )
        except InvalidInput as err:
            attach_error(form, err)
            return _page(group, form, 400)
        except IntegrityError:
            # The same new address sent twice at once: the other request mails its owner.
            return redirect(url_for("groups.check_email", slug=group.slug))
        kind = notices.JOIN if outcome.email_to_send == "confirm" else notices.ALREADY
        member_id, slug = outcome.member.id, group.slug
    rt().queue.send(send_group_email, kind, member_id)  # after the commit: the worker finds the row
    return redirect(url_for("groups.check_email", slug=slug))


def check_email(slug: str):
    with rt().db.transaction() as s:
        group = directory.find_group(s, slug)
        if group is None:
            abort(404)
        return render_template("groups/check_email.html", group=group, days=rt().settings.confirm_max_age_days)


def confirm(token: str):
    settings = rt().settings
    with rt().db.transaction() as s:
        try:
            member = service.member_from_token(
                s, tokens(), "group-confirm", token, settings.confirm_max_age_days * 86400
            )
        except TokenError as err:
            return link_error(err, "group-confirm")
        form = ButtonForm()
        page = dict(member=member, group=member.group, form=form)
        if member.status == ACTIVE:
            return _joined(member)
        if request.method == "GET" or not form.validate_on_submit():
            # Joining takes a button press: a scanner that fetches the link joins nobody.
            error = "Your session expired; press the button again." if request.method == "POST" else None
            return render_template("groups/confirm.html", error=error, **page), 400 if error else 200
        try:
            service.confirm_join(s, member, ip=consent_ip())
        except TokenError as err:
            return link_error(err, "group-confirm")
        return _joined(member)


def _joined(member):
    manage = tokens().make("group-manage", member.id, member.token_version)
    web = tokens().make("group-web", member.id, member.token_version)
    page = dict(member=member, group=member.group, manage_token=manage, web_token=web)
    return render_template("groups/joined.html", **page)


@csrf.exempt  # RFC 8058: mail clients POST here with no cookie and no CSRF token
def leave(token: str):
    with rt().db.transaction() as s:
        try:
            member = service.member_from_token(s, tokens(), "group-leave", token)
        except TokenError as err:
            return link_error(err, "group-leave")
        page = dict(member=member, group=member.group)
        if request.method == "GET":
            return render_template("groups/leave.html", done=member.status != ACTIVE, **page)  # a GET only asks
        if request.form.get("List-Unsubscribe") != "One-Click":
            return render_template("groups/leave.html", done=False, error="Press the button to leave.", **page), 400
        source = "link" if request.form.get("from") == "page" else "one-click"
        service.leave(s, member, source=source, ip=consent_ip())
        # 200 and no redirect: RFC 8058 clients treat anything else as a failure.
        return render_template("groups/leave.html", done=True, **page)


def _member_from_manage_link(s, token):
    """(membership, whether the link is recent enough to open the digest's preferences
    too), or TokenError. Group manage links never expire for the group itself; the
    digest's part of the page needs a link as recent as the digest's own manage links."""
    m = service.member_from_token(s, tokens(), "group-manage", token)
    try:
        tokens().read("group-manage", token, rt().settings.manage_link_max_age_days * 86400)
        recent = True
    except TokenError:
        recent = False
    return m, recent


def _person_page(s, m, recent, status=200, *, saved="", posted=None):
    """The one preference page of ``m``'s address: the digest's choices (when the address
    subscribes and the link is recent) and every group it is a member of."""
    sub = subscriber_service.by_address(s, m.email) if recent else None
    if sub is not None and sub.status != "erased":
        return preferences.page_for(s, sub, status, group_saved=saved, posted=posted)
    page = dict(
        member=m,
        group=m.group,
        email=m.email,
        memberships=group_rows(s, m.email, posted),
        group_saved=saved,
        button=ButtonForm(formdata=None),
        recent=recent,
    )
    return render_template("groups/member.html", **page), status


def member(token: str):
    """A group email's manage link: the person's one preference page; a POST saves this
    membership's delivery choice (GET changes nothing)."""
    with rt().db.transaction() as s:
        try:
            m, recent = _member_from_manage_link(s, token)
        except TokenError as err:
            return link_error(err, "group-manage")
        if request.method == "GET" or m.status != ACTIVE:
            return _person_page(s, m, recent)
        form = delivery_form(m, posted=True)
        if not form.validate_on_submit():
            expired = "This form expired. Please choose again and save." if form.csrf_token.errors else ""
            return _person_page(s, m, recent, 400, saved=expired, posted={m.id: form})
        changed = service.set_delivery(s, m, form.delivery.data, ip=consent_ip())
        saved = SAVED[m.delivery].format(group=m.group.name) if changed else "Nothing to change."
        return _person_page(s, m, recent, saved=saved)


SAVED = {
    "every": "Saved: every message from {group}, as it is sent.",
    "digest": "Saved: one email a day from {group}.",
    "web": "Saved: no email from {group}; you read it on the web.",
}


def leave_from_page(token: str):
    """The preference page's leave button (a form with its CSRF token; the RFC 8058
    one-click POST is :func:`leave`)."""
    with rt().db.transaction() as s:
        try:
            m, recent = _member_from_manage_link(s, token)
        except TokenError as err:
            return link_error(err, "group-manage")
        if not ButtonForm().validate_on_submit():
            return _person_page(s, m, recent, 400, saved="This form expired. Please press the button again.")
        left = service.leave(s, m, source="link", ip=consent_ip())
        name = m.group.name
        return _person_page(s, m, recent, saved=f"You have left {name}." if left else f"You are not in {name}.")
