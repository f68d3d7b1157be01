"""Groups in the console: the list (member and held counts), create and edit a group,
its members (search, add with a recorded basis, remove, role and delivery) and its sender
rules (trust, ban, lift).

A thin shell over :mod:`mailer.groups` (``directory`` for groups, ``service`` for
memberships, ``posting`` for sender rules, ``roster`` for the lists). Editors and admins
change things (``groups.manage``); moderators and viewers read (``groups.view``). Every
change is audited in the transaction that makes it, by ids (never an address: the log is
never edited, so it holds nothing an erasure would have to remove). Held posts are decided in the
moderation inbox (:mod:`.held_posts`), which this page links to.
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from mailer.groups import directory, posting, roster, service
from mailer.groups.models import ACTIVE, BAN, TRUST, GroupMember, GroupSender
from mailer.runtime import current as rt
from mailer.staff import audit
from mailer.staff.permissions import GROUPS_MANAGE, GROUPS_VIEW
from mailer.validation import InvalidInput, email_address
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.console.forms import PlainForm
from mailer.web.console.group_forms import (
    AddMembersForm,
    GroupForm,
    MemberForm,
    MemberSearch,
    NewGroupForm,
    SenderForm,
)
from mailer.web.helpers import client_ip, error_on, page_number

PER_PAGE = 25
MEMBERS_PER_PAGE = 50
MAX_ADD = 500


def _by() -> str:
    return f"console:{g.staff.username}"


def summary(group) -> dict:
    """What the audit log keeps of a group."""
    return {
        "slug": group.slug,
        "name": group.name,
        "description": group.description,
        "visibility": group.visibility,
        "posting_policy": group.posting_policy,
        "max_bytes": group.max_bytes,
        "allow_attachments": group.allow_attachments,
    }


# The domain's name of a field -> the form's, where they differ.
_FORM_FIELD = {"posting_policy": "policy"}


def _group_or_404(slug: str):
    group = directory.find_group(db(), slug)
    if group is None:
        abort(404)
    return group


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


# --- the list and a new group -------------------------------------------------------------


def _list_page(form: NewGroupForm | None = None, status: int = 200):
    result = roster.groups_page(db(), page=page_number(), per_page=PER_PAGE)

    def page_url(n: int) -> str:
        return url_for("console.groups_list", page=n)

    return render_template(
        "console/groups/list.html",
        result=result,
        page_url=page_url,
        form=form or NewGroupForm(formdata=None),
        list_domain=rt().settings.list_domain,
    ), status


@bp.get("/groups")
@require(GROUPS_VIEW)
def groups_list():
    return _list_page()


@bp.post("/groups")
@require(GROUPS_MANAGE)
def groups_create():
    form = NewGroupForm()
    if not form.validate_on_submit():
        return _list_page(form, 400)
    s = db()
    owners, moderators = _lines(form.owners.data), _lines(form.moderators.data)
    try:
        group = directory.create_group(
            s,
            form.slug.data or "",
            form.name.data or "",
            reserved=directory.reserved_locals(rt().settings),
            description=form.description.data or "",
            visibility=form.visibility.data,
            policy=form.policy.data,
            max_bytes=form.max_bytes.data,
            allow_attachments=form.allow_attachments.data,
            by=_by(),
        )
        added = []
        for role, emails in (("owner", owners), ("moderator", moderators)):
            if emails:
                added += service.add_members(s, group, emails, basis="contract", role=role, source="console", by=_by())
    except InvalidInput as err:
        s.rollback()
        error_on(form, err, _FORM_FIELD | {"email": "owners"})
        return _list_page(form, 400)
    after = {**summary(group), "owners": len(owners), "moderators": len(moderators)}
    audit.record(s, g.staff, "group.create", group, after=after, ip=client_ip())
    s.commit()
    flash(f"Created the group {group.name}.", "ok")
    for a in added:
        if a.outcome == "suppressed":
            flash(f"{a.email} is on the suppression list and was not added.", "error")
    return redirect(url_for("console.group_page", slug=group.slug))


# --- one group ---------------------------------------------------------------------------


def _group_page(group, form: GroupForm | None = None, status: int = 200):
    s = db()
    if form is None:
        form = GroupForm(formdata=None, data={**summary(group), "policy": group.posting_policy})
    return render_template(
        "console/groups/group.html",
        group=group,
        form=form,
        address=directory.address_of(group, rt().settings.list_domain),
        members=roster.members_page(s, group, per_page=1).total,
        held=roster.held_count(s, group),
        staff_roles=[m for m in service.moderators(s, group)][:50],
    ), status


@bp.get("/groups/<slug>")
@require(GROUPS_VIEW)
def group_page(slug: str):
    return _group_page(_group_or_404(slug))


@bp.post("/groups/<slug>")
@require(GROUPS_MANAGE)
def group_edit(slug: str):
    group = _group_or_404(slug)
    form = GroupForm()
    if not form.validate_on_submit():
        return _group_page(group, form, 400)
    s = db()
    before = summary(group)
    try:
        changed = directory.edit_group(
            s,
            group,
            name=form.name.data or "",
            description=form.description.data or "",
            visibility=form.visibility.data,
            policy=form.policy.data,
            max_bytes=form.max_bytes.data,
            allow_attachments=form.allow_attachments.data,
        )
    except InvalidInput as err:
        s.rollback()
        error_on(form, err, _FORM_FIELD)
        return _group_page(_group_or_404(slug), form, 400)
    if changed:
        after = summary(group)
        audit.record(
            s,
            g.staff,
            "group.edit",
            group,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
            ip=client_ip(),
        )
    s.commit()
    flash("Saved." if changed else "Nothing changed.", "ok")
    return redirect(url_for("console.group_page", slug=slug))


# --- members -----------------------------------------------------------------------------


def _members_page(group, add: AddMembersForm | None = None, status: int = 200):
    s = db()
    search = MemberSearch(request.args)
    state = request.args.get("status", ACTIVE)
    state = state if state in {c.value for c in search.status.choices} else ACTIVE
    q = (search.q.data or "").strip()[:100]
    result = roster.members_page(
        s, group, search=q, status="" if state == "all" else state, page=page_number(), per_page=MEMBERS_PER_PAGE
    )
    active = {k: v for k, v in (("q", q), ("status", state if state != ACTIVE else "")) if v}

    def page_url(n: int) -> str:
        return url_for("console.group_members", slug=group.slug, page=n, **active)

    forms = {}
    for m in result.rows:
        f = MemberForm(prefix=f"m{m.id}", formdata=None, data={"role": m.role, "delivery": m.delivery})
        forms[m.id] = f
    return render_template(
        "console/groups/members.html",
        group=group,
        search=search,
        result=result,
        page_url=page_url,
        add=add or AddMembersForm(formdata=None),
        forms=forms,
        rules=roster.rules_for(s, group, [m.email_key for m in result.rows]),
        plain=PlainForm(),
        back=url_for("console.group_members", slug=group.slug, page=result.page, **active),
    ), status


@bp.get("/groups/<slug>/members")
@require(GROUPS_VIEW)
def group_members(slug: str):
    return _members_page(_group_or_404(slug))


@bp.post("/groups/<slug>/members")
@require(GROUPS_MANAGE)
def group_members_add(slug: str):
    group = _group_or_404(slug)
    form = AddMembersForm()
    if not form.validate_on_submit():
        return _members_page(group, form, 400)
    emails = _lines(form.emails.data)
    if len(emails) > MAX_ADD:
        form.emails.errors = [f"At most {MAX_ADD} addresses at a time; for more, import them with the CLI."]
        return _members_page(group, form, 400)
    s = db()
    try:
        added = service.add_members(
            s,
            group,
            emails,
            basis=form.basis.data,
            role=form.role.data,
            delivery=form.delivery.data,
            source="console",
            by=_by(),
        )
    except InvalidInput as err:
        s.rollback()
        form.emails.errors = [f"{err.message} Nobody was added." if err.field == "email" else err.message]
        return _members_page(_group_or_404(slug), form, 400)
    counts: dict[str, int] = {}
    for a in added:
        counts[a.outcome] = counts.get(a.outcome, 0) + 1
    audit.record(
        s,
        g.staff,
        "group.members.add",
        group,
        after={"basis": form.basis.data, "role": form.role.data, "delivery": form.delivery.data, **counts},
        ip=client_ip(),
    )
    s.commit()
    done = ", ".join(f"{n} {what}" for what, n in counts.items())
    flash(f"Done: {done}.", "ok")
    for a in added:
        if a.outcome == "suppressed":
            flash(f"{a.email} is on the suppression list and was not added.", "error")
    return redirect(url_for("console.group_members", slug=slug))


def _member_or_404(group, member_id: int) -> GroupMember:
    member = db().get(GroupMember, member_id)
    if member is None or member.group_id != group.id:
        abort(404)
    return member


def _back(slug: str) -> str:
    path = request.form.get("back", "")
    prefix = f"/admin/groups/{slug}/members"
    if path.startswith(prefix) and "//" not in path and "\\" not in path:
        return path
    return url_for("console.group_members", slug=slug)


@bp.post("/groups/<slug>/members/<int:member_id>")
@require(GROUPS_MANAGE)
def group_member_change(slug: str, member_id: int):
    group = _group_or_404(slug)
    member = _member_or_404(group, member_id)
    form = MemberForm(prefix=f"m{member.id}")
    if not form.validate_on_submit():
        flash("Choose a role and a delivery mode.", "error")
        return redirect(_back(slug))
    s = db()
    before = {"role": member.role, "delivery": member.delivery}
    try:
        service.set_role(s, member, form.role.data, by=_by())
        service.set_delivery(s, member, form.delivery.data, source="console")
    except InvalidInput as err:
        s.rollback()
        flash(f"{member.email}: {err.message}", "error")
        return redirect(_back(slug))
    after = {"role": member.role, "delivery": member.delivery}
    if after != before:
        audit.record(s, g.staff, "group.member.edit", member, before=before, after=after, ip=client_ip())
    s.commit()
    flash(f"Saved {member.email}." if after != before else "Nothing changed.", "ok")
    return redirect(_back(slug))


@bp.post("/groups/<slug>/members/<int:member_id>/remove")
@require(GROUPS_MANAGE)
def group_member_remove(slug: str, member_id: int):
    group = _group_or_404(slug)
    member = _member_or_404(group, member_id)
    s = db()
    outcome = service.remove_members(s, group, [member.email], source="console", by=_by())
    if outcome.get(member.email) == "removed":
        audit.record(
            s,
            g.staff,
            "group.member.remove",
            member,
            before={"status": ACTIVE},
            after={"status": member.status},
            ip=client_ip(),
        )
        flash(f"Removed {member.email}.", "ok")
    else:
        flash(f"{member.email} is not a member.", "error")
    s.commit()
    return redirect(_back(slug))


# --- sender rules ------------------------------------------------------------------------


def _senders_page(group, form: SenderForm | None = None, status: int = 200):
    result = roster.senders_page(db(), group, page=page_number())

    def page_url(n: int) -> str:
        return url_for("console.group_senders", slug=group.slug, page=n)

    return render_template(
        "console/groups/senders.html",
        group=group,
        result=result,
        page_url=page_url,
        form=form or SenderForm(formdata=None),
        plain=PlainForm(),
    ), status


@bp.get("/groups/<slug>/senders")
@require(GROUPS_VIEW)
def group_senders(slug: str):
    return _senders_page(_group_or_404(slug))


@bp.post("/groups/<slug>/senders")
@require(GROUPS_MANAGE)
def group_senders_set(slug: str):
    """Trust or ban an address (from the rules page, or a member's row: ``back``)."""
    group = _group_or_404(slug)
    form = SenderForm()
    if not form.validate_on_submit():
        return _senders_page(group, form, 400)
    try:
        address = email_address("email", form.email.data or "")
    except InvalidInput as err:
        form.email.errors = [err.message]
        return _senders_page(group, form, 400)
    s = db()
    before = posting.sender_rule(s, group, address)
    if before != form.action.data:
        posting.set_sender_rule(s, group, address, form.action.data, by=_by())
        rule_id = s.scalar(
            select(GroupSender.id).where(GroupSender.group_id == group.id, GroupSender.email_key == address.lower())
        )
        audit.record(
            s,
            g.staff,
            f"group.sender.{form.action.data}",
            ("group_senders", rule_id),
            before={"group": group.slug, "rule": before},
            after={"group": group.slug, "rule": form.action.data},
            ip=client_ip(),
        )
    s.commit()
    flash(f"{address}: {'trusted' if form.action.data == TRUST else 'banned'}.", "ok")
    back = request.form.get("back", "")
    if back.startswith(f"/admin/groups/{slug}/") and "//" not in back and "\\" not in back:
        return redirect(back)
    return redirect(url_for("console.group_senders", slug=slug))


@bp.post("/groups/<slug>/senders/<int:rule_id>/lift")
@require(GROUPS_MANAGE)
def group_sender_lift(slug: str, rule_id: int):
    group = _group_or_404(slug)
    s = db()
    rule = s.get(GroupSender, rule_id)
    if rule is None or rule.group_id != group.id:
        abort(404)
    email, action = rule.email_key, rule.action
    posting.set_sender_rule(s, group, email, None, by=_by())
    verb = "lift" if action == BAN else "untrust"
    audit.record(
        s,
        g.staff,
        f"group.sender.{verb}",
        ("group_senders", rule_id),
        before={"group": group.slug, "rule": action},
        after={"group": group.slug, "rule": None},
        ip=client_ip(),
    )
    s.commit()
    flash(f"{email}: {'ban lifted' if action == BAN else 'no longer trusted'}.", "ok")
    return redirect(url_for("console.group_senders", slug=slug))
