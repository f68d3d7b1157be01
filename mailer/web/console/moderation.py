"""The moderation inbox: held things waiting (partner items, and group posts whose own
pages are :mod:`.held_posts`'s), one item's page with its claim, the partner's original
as a diff and the partner's history, and the actions.

A thin shell over :mod:`mailer.staff.inbox` (listing) and :mod:`mailer.staff.moderating`
(claims, decisions and the audit log). Every action posts, commits, then queues the
partner's notice, and redirects back (post/redirect/get); a refusal re-renders the page
with the reason at the top.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from mailer.actors.groups import start_group_post
from mailer.actors.partners import send_partner_notice
from mailer.content import reasons as reason_templates
from mailer.content.models import ITEM_KINDS, Partner, Topic
from mailer.content.moderation import ModerationError, draft_of, get_item, snapshot
from mailer.content.notices import decisions_owed
from mailer.content.review import changes_from_original, partner_history
from mailer.groups.models import Group
from mailer.runtime import current as rt
from mailer.staff import claims, inbox, moderating, post_moderating
from mailer.staff.permissions import ITEMS_MODERATE
from mailer.validation import InvalidInput
from mailer.web.console.access import db, now, require
from mailer.web.console.blueprint import bp
from mailer.web.console.forms import PlainForm
from mailer.web.console.moderation_forms import OTHER, EditItemForm, InboxFilter, RejectForm, WithdrawForm
from mailer.web.helpers import client_ip

PER_PAGE = 25
FILTERS = ("source", "status", "partner", "kind", "topic", "group")


def moment() -> datetime:
    """The console's clock as a UTC datetime (claims are timed by it)."""
    return datetime.fromtimestamp(now(), timezone.utc)


def age_of(now: datetime):
    """``age(at)``: how long ago ``at`` was, in words a moderator scans ("3 h", "2 days")."""

    def age(at: datetime) -> str:
        at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        minutes = max(0, int((now - at).total_seconds() // 60))
        if minutes < 60:
            return f"{minutes} min"
        if minutes < 48 * 60:
            return f"{minutes // 60} h"
        return f"{minutes // 1440} days"

    return age


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _notify(item_ids) -> None:
    """Queue the decision emails owed for ``item_ids`` (after the commit)."""
    for kind, item_id in decisions_owed(db(), item_ids):
        rt().queue.send(send_partner_notice, kind, item_id)


# --- the inbox ---------------------------------------------------------------------------


@bp.get("/moderation")
@require(ITEMS_MODERATE)
def inbox_list():
    s = db()
    form = InboxFilter(request.args)
    partners = list(s.execute(select(Partner.id, Partner.name).order_by(Partner.name)))
    topics = list(s.execute(select(Topic.id, Topic.name).order_by(Topic.position, Topic.id)))
    form.partner.choices = [SelectChoice("", "Any partner")] + [SelectChoice(str(i), n) for i, n in partners]
    form.topic.choices = [SelectChoice("", "Any topic")] + [SelectChoice(str(i), n) for i, n in topics]
    groups = list(s.execute(select(Group.id, Group.name).order_by(Group.name)))
    form.group.choices = [SelectChoice("", "Any group")] + [SelectChoice(str(i), n) for i, n in groups]
    status = request.args.get("status", "submitted")
    source = request.args.get("source", "")
    f = inbox.InboxFilter(
        source=source if source in inbox.SOURCES else "",
        group_id=_int(request.args.get("group")),
        status="" if status == "all" else status,
        partner_id=_int(request.args.get("partner")),
        item_kind=request.args.get("kind", "") if request.args.get("kind", "") in ITEM_KINDS else "",
        topic_id=_int(request.args.get("topic")),
    )
    result = inbox.search(s, f, now=moment(), page=_int(request.args.get("page")) or 1, per_page=PER_PAGE)
    active = {k: v for k, v in request.args.items() if k in FILTERS and v}

    def page_url(n: int) -> str:
        return url_for("console.inbox_list", page=n, **active)

    return render_template(
        "console/moderation/inbox.html",
        form=form,
        result=result,
        page_url=page_url,
        plain=PlainForm(),
        back=url_for("console.inbox_list", **active, page=result.page),
        age=age_of(moment()),
    )


@bp.post("/moderation/approve")
@require(ITEMS_MODERATE)
def inbox_bulk_approve():
    """Approve the ticked items and held group posts (each that can be; the others are
    named with why not)."""
    ids = [i for i in (_int(v) for v in request.form.getlist("item")) if i is not None]
    post_ids = [i for i in (_int(v) for v in request.form.getlist("post")) if i is not None]
    back = _safe_back(request.form.get("back"))
    if not ids and not post_ids:
        flash("Tick the items to approve first.", "error")
        return redirect(back)
    s = db()
    outcome = moderating.approve_items(s, g.staff, ids, now=moment(), ip=client_ip())
    posts = post_moderating.approve_posts(s, g.staff, post_ids, now=moment(), ip=client_ip())
    s.commit()
    _notify(outcome.approved)
    for post_id in posts.approved:
        rt().queue.send(start_group_post, post_id)  # after the commit: the worker finds it approved
    if outcome.approved:
        flash(f"Approved {len(outcome.approved)} item{'s' if len(outcome.approved) != 1 else ''}.", "ok")
    if posts.approved:
        n = len(posts.approved)
        flash(
            f"Approved {n} group post{'s' if n != 1 else ''}: {'they go' if n != 1 else 'it goes'} to the members.",
            "ok",
        )
    for item_id, why in outcome.refused.items():
        flash(f"Item {item_id} was not approved: {why}", "error")
    for post_id, why in posts.refused.items():
        flash(f"Post {post_id} was not approved: {why}", "error")
    return redirect(back)


def _safe_back(path: str | None) -> str:
    if path and path.startswith("/admin/moderation") and not path.startswith("//") and "\\" not in path:
        return path
    return url_for("console.inbox_list")


# --- one item ----------------------------------------------------------------------------


def _item_or_404(item_id: int):
    try:
        return get_item(db(), item_id)
    except ModerationError:
        abort(404)


def _reject_form(s, rows=None) -> RejectForm:
    """The rejection form with the reason templates as choices (``rows``: the templates
    when the caller has read them already)."""
    rows = reason_templates.all_reasons(s) if rows is None else rows
    form = RejectForm()
    form.reason.choices = (
        [SelectChoice("", "Choose a reason")]
        + [SelectChoice(str(r.id), r.title) for r in rows]
        + [SelectChoice(OTHER, "Other (write it below)")]
    )
    return form


def rejection_text(s, form: RejectForm, told: str) -> str | None:
    """The words a rejection sends (the chosen template, then the moderator's extra lines;
    or only those lines for "Other"), or None with the error put on its field. ``told``
    names who reads it ("the partner", "the sender")."""
    extra = (form.extra.data or "").strip()
    if form.reason.data == OTHER:
        if not extra:
            form.extra.errors = [*form.extra.errors, f"Write the reason for {told}."]
            return None
        return extra
    template = reason_templates.get_reason(s, _int(form.reason.data) or 0)
    if template is None:
        form.reason.errors = [*form.reason.errors, "That reason no longer exists: choose another."]
        return None
    return template.text + (f"\n\n{extra}" if extra else "")


def _item_page(item, status: int = 200, problem: str | None = None, reject: RejectForm | None = None, **forms):
    s = db()
    reasons = reason_templates.all_reasons(s)  # the page lists them and the form offers them
    holder = claims.current(s, moderating.KIND, item.id, moment())
    return render_template(
        "console/moderation/item.html",
        item=item,
        holder=holder,
        mine=holder is not None and holder.staff_id == g.staff.id,
        changes=changes_from_original(item, snapshot(item)),
        history=partner_history(s, item.partner_id, besides=item.id),
        reasons=reasons,
        reject=reject or _reject_form(s, reasons),
        withdraw=forms.get("withdraw") or WithdrawForm(),
        plain=PlainForm(),
        problem=problem,
        kinds=ITEM_KINDS,
    ), status


@bp.get("/moderation/items/<int:item_id>")
@require(ITEMS_MODERATE)
def inbox_item(item_id: int):
    return _item_page(_item_or_404(item_id))


def _act(item_id: int, action, *, notify: bool = False, done: str):
    """Run ``action(session, item)``; commit and go back to the item, or show why not."""
    s = db()
    item = _item_or_404(item_id)
    try:
        action(s, item)
    except (ModerationError, InvalidInput) as err:
        s.rollback()
        item = _item_or_404(item_id)
        status = 409 if isinstance(err, moderating.Busy) else 400
        return _item_page(item, status, problem=getattr(err, "message", None) or str(err))
    s.commit()
    if notify:
        _notify([item_id])
    flash(done, "ok")
    return redirect(url_for("console.inbox_item", item_id=item_id))


@bp.post("/moderation/items/<int:item_id>/claim")
@require(ITEMS_MODERATE)
def inbox_claim(item_id: int):
    return _act(
        item_id,
        lambda s, i: moderating.claim_item(s, g.staff, i.id, now=moment(), ip=client_ip()),
        done=f"You are working on this item for the next {claims.CLAIM_MINUTES} minutes.",
    )


@bp.post("/moderation/items/<int:item_id>/release")
@require(ITEMS_MODERATE)
def inbox_release(item_id: int):
    return _act(
        item_id, lambda s, i: moderating.release_item(s, g.staff, i.id, ip=client_ip()), done="You released this item."
    )


@bp.post("/moderation/items/<int:item_id>/approve")
@require(ITEMS_MODERATE)
def inbox_approve(item_id: int):
    return _act(
        item_id,
        lambda s, i: moderating.approve_item(s, g.staff, i.id, now=moment(), ip=client_ip()),
        notify=True,
        done="Approved. The next edition can carry it.",
    )


@bp.post("/moderation/items/<int:item_id>/reject")
@require(ITEMS_MODERATE)
def inbox_reject(item_id: int):
    s = db()
    item = _item_or_404(item_id)
    form = _reject_form(s)
    if not form.validate_on_submit():
        return _item_page(item, 400, reject=form)
    text = rejection_text(s, form, "the partner")
    if text is None:
        return _item_page(item, 400, reject=form)
    return _act(
        item_id,
        lambda s, i: moderating.reject_item(s, g.staff, i.id, text, now=moment(), ip=client_ip()),
        notify=True,
        done="Rejected. The partner is told the reason.",
    )


@bp.post("/moderation/items/<int:item_id>/feature")
@require(ITEMS_MODERATE)
def inbox_feature(item_id: int):
    on = request.form.get("featured") == "1"
    return _act(
        item_id,
        lambda s, i: moderating.feature_item(s, g.staff, i.id, on, now=moment(), ip=client_ip()),
        done="Featured: it leads the digest for readers who chose it." if on else "No longer featured.",
    )


@bp.post("/moderation/items/<int:item_id>/withdraw")
@require(ITEMS_MODERATE)
def inbox_withdraw(item_id: int):
    form = WithdrawForm()
    if not form.validate_on_submit():
        return _item_page(_item_or_404(item_id), 400, withdraw=form)
    reason = form.reason.data or ""
    return _act(
        item_id,
        lambda s, i: moderating.withdraw_item(s, g.staff, i.id, reason, now=moment(), ip=client_ip()),
        done="Withdrawn: no edition will carry it.",
    )


@bp.route("/moderation/items/<int:item_id>/edit", methods=["GET", "POST"])
@require(ITEMS_MODERATE)
def inbox_edit(item_id: int):
    s = db()
    item = _item_or_404(item_id)
    topics = list(s.scalars(select(Topic).order_by(Topic.position, Topic.id)))
    if request.method == "GET":
        form = EditItemForm(data=_form_data(item))
    else:
        form = EditItemForm()
    form.topics.choices = [SelectChoice(t.id, t.name) for t in topics]
    holder = claims.blocked_by(s, moderating.KIND, item.id, g.staff, moment())
    if request.method == "GET" or not form.validate_on_submit():
        status = 200 if request.method == "GET" else 400
        return render_template("console/moderation/edit.html", form=form, item=item, holder=holder), status
    try:
        moderating.edit_item(
            s,
            g.staff,
            item.id,
            form.draft(),
            today=date.today(),
            now=moment(),
            ip=client_ip(),
            note=form.note.data or "",
        )
    except InvalidInput as err:
        s.rollback()
        field = getattr(form, err.field, None)
        if field is None:
            form.form_errors.append(f"{err.field}: {err.message}")
        else:
            field.errors = [*field.errors, err.message]
        return render_template("console/moderation/edit.html", form=form, item=_item_or_404(item_id), holder=None), 400
    except ModerationError as err:
        s.rollback()
        form.form_errors.append(str(err))
        return render_template("console/moderation/edit.html", form=form, item=_item_or_404(item_id), holder=None), 409
    s.commit()
    flash("Saved. The partner's original is kept: see the changes below.", "ok")
    return redirect(url_for("console.inbox_item", item_id=item_id))


def _form_data(item) -> dict:
    d = draft_of(item)
    return {
        **{k: getattr(d, k) for k in ("title", "summary", "link", "kind", "body", "image_url", "image_alt")},
        "topics": list(d.topic_ids),
        "event_date": date.fromisoformat(d.event_date) if d.event_date else None,
        "event_time": item.event_starts_at.time() if item.event_starts_at and d.event_time else None,
        "event_place": d.event_place,
        "publish_from": item.publish_from,
        "publish_until": item.publish_until,
        "contact_email": d.contact_email,
    }
