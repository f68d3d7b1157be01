"""Partners and topics: create and edit partners, rotate or revoke their submission link
and API tokens (a new secret is shown once, on the page that made it, and never logged or
audited), see their feed's state; topics with their order and descriptions.

A thin shell over :mod:`mailer.content.partners` and :mod:`mailer.content.topics`; each
change is audited (which secret changed, never the secret).
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from mailer.content import partners as domain
from mailer.content import topics
from mailer.content.models import ApiToken, Partner, Topic
from mailer.paging import page_count
from mailer.runtime import current as rt
from mailer.staff import audit
from mailer.staff.permissions import PARTNERS_MANAGE
from mailer.validation import InvalidInput
from mailer.web.console.access import db, require
from mailer.web.console.blueprint import bp
from mailer.web.console.forms import PlainForm
from mailer.web.console.partner_forms import NewPartnerForm, PartnerForm, TokenForm, TopicForm
from mailer.web.helpers import client_ip, error_on, page_number

PER_PAGE = 50


def partner_summary(p: Partner) -> dict:
    """What the audit log keeps of a partner (no secret, not even its hash)."""
    return {
        "slug": p.slug,
        "name": p.name,
        "website": p.website,
        "description": p.description,
        "logo_url": p.logo_url,
        "contact_email": p.contact_email,
        "feed_url": p.feed_url,
        "trusted": p.trusted,
        "active": p.active,
    }


def _fields(form) -> domain.PartnerFields:
    return domain.PartnerFields(
        name=form.name.data or "",
        website=form.website.data or "",
        description=form.description.data or "",
        logo_url=form.logo_url.data or "",
        contact_email=form.contact_email.data or "",
        feed_url=form.feed_url.data or "",
        trusted=bool(form.trusted.data),
        active=bool(form.active.data),
    )


# --- the list ----------------------------------------------------------------------------


def _list_page(form=None, status=200):
    s = db()
    page = page_number()
    total = s.scalar(select(func.count()).select_from(Partner)) or 0
    rows = list(
        s.scalars(select(Partner).order_by(Partner.name, Partner.id).offset((page - 1) * PER_PAGE).limit(PER_PAGE))
    )
    live = dict(
        s.execute(
            select(ApiToken.partner_id, func.count())
            .where(ApiToken.revoked_at.is_(None), ApiToken.partner_id.in_([p.id for p in rows]))
            .group_by(ApiToken.partner_id)
        ).all()
    )
    pages = page_count(total, PER_PAGE)
    return render_template(
        "console/partners/list.html",
        partners=rows,
        live=live,
        total=total,
        page=page,
        pages=pages,
        form=form or NewPartnerForm(formdata=None, data={"active": True}),
    ), status


@bp.get("/partners")
@require(PARTNERS_MANAGE)
def partners_list():
    return _list_page()


@bp.post("/partners")
@require(PARTNERS_MANAGE)
def partners_create():
    form = NewPartnerForm()
    if not form.validate_on_submit():
        return _list_page(form, 400)
    s = db()
    try:
        partner = domain.create_partner(s, (form.slug.data or "").strip(), _fields(form))
    except InvalidInput as err:
        s.rollback()
        error_on(form, err)
        return _list_page(form, 400)
    audit.record(s, g.staff, "partner.create", partner, after=partner_summary(partner), ip=client_ip())
    s.commit()
    flash(f"Added {partner.name}. Issue a submission link or an API token for them below.", "ok")
    return redirect(url_for("console.partner_page", partner_id=partner.id))


# --- one partner -------------------------------------------------------------------------


def _partner(partner_id: int) -> Partner:
    p = db().get(Partner, partner_id)
    if p is None:
        abort(404)
    return p


def _partner_page(p: Partner, form=None, token_form=None, status=200, **shown_once):
    return render_template(
        "console/partners/partner.html",
        partner=p,
        form=form or PartnerForm(formdata=None, obj=p),
        token_form=token_form or TokenForm(formdata=None),
        tokens=domain.api_tokens_of(db(), p),
        plain=PlainForm(),
        **shown_once,
    ), status


@bp.get("/partners/<int:partner_id>")
@require(PARTNERS_MANAGE)
def partner_page(partner_id: int):
    return _partner_page(_partner(partner_id))


@bp.post("/partners/<int:partner_id>")
@require(PARTNERS_MANAGE)
def partner_edit(partner_id: int):
    p = _partner(partner_id)
    form = PartnerForm()
    if not form.validate_on_submit():
        return _partner_page(p, form=form, status=400)
    s = db()
    before = partner_summary(p)
    try:
        domain.apply_partner_fields(p, _fields(form))
        s.flush()
    except InvalidInput as err:
        s.rollback()
        error_on(form, err)
        return _partner_page(_partner(partner_id), form=form, status=400)
    after = partner_summary(p)
    changed = [k for k in after if before[k] != after[k]]
    if changed:
        audit.record(
            s,
            g.staff,
            "partner.edit",
            p,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
            ip=client_ip(),
        )
    s.commit()
    flash("Saved." if changed else "Nothing changed.", "ok")
    return redirect(url_for("console.partner_page", partner_id=partner_id))


@bp.post("/partners/<int:partner_id>/link")
@require(PARTNERS_MANAGE)
def partner_link_rotate(partner_id: int):
    p = _partner(partner_id)
    s = db()
    had = p.submit_token_hash is not None
    secret = domain.rotate_submit_secret(p)
    audit.record(s, g.staff, "partner.link_rotate", p, after={"replaced_a_link": had}, ip=client_ip())
    s.commit()
    # Shown on this response only (the page is not cached: Cache-Control: no-store).
    return _partner_page(p, new_link=f"{rt().settings.base_url}/submit/{secret}")


@bp.post("/partners/<int:partner_id>/link/revoke")
@require(PARTNERS_MANAGE)
def partner_link_revoke(partner_id: int):
    p = _partner(partner_id)
    s = db()
    if p.submit_token_hash is not None:
        domain.revoke_submit_secret(p)
        audit.record(s, g.staff, "partner.link_revoke", p, ip=client_ip())
        s.commit()
        flash("The submission link no longer works. Issue a new one when the partner needs it.", "ok")
    return redirect(url_for("console.partner_page", partner_id=partner_id))


@bp.post("/partners/<int:partner_id>/tokens")
@require(PARTNERS_MANAGE)
def partner_token_issue(partner_id: int):
    p = _partner(partner_id)
    form = TokenForm()
    if not form.validate_on_submit():
        return _partner_page(p, token_form=form, status=400)
    s = db()
    try:
        row, token = domain.issue_api_token(s, p, form.label.data or "")
    except InvalidInput as err:
        s.rollback()
        error_on(form, err)
        return _partner_page(_partner(partner_id), token_form=form, status=400)
    audit.record(
        s,
        g.staff,
        "partner.token_issue",
        p,
        after={"token_id": row.id, "prefix": row.prefix, "label": row.label},
        ip=client_ip(),
    )
    s.commit()
    return _partner_page(p, new_token=token)


@bp.post("/partners/<int:partner_id>/tokens/<int:token_id>/revoke")
@require(PARTNERS_MANAGE)
def partner_token_revoke(partner_id: int, token_id: int):
    p = _partner(partner_id)
    s = db()
    row = s.get(ApiToken, token_id)
    if row is None or row.partner_id != p.id:
        abort(404)
    if row.revoked_at is None:
        domain.revoke_api_token(s, token_id)
        audit.record(
            s, g.staff, "partner.token_revoke", p, after={"token_id": row.id, "prefix": row.prefix}, ip=client_ip()
        )
        s.commit()
        flash(f"Token {row.prefix}… revoked: it stops working at once.", "ok")
    return redirect(url_for("console.partner_page", partner_id=partner_id))


# --- topics ------------------------------------------------------------------------------


def _topics_page(new=None, edited=None, status=200):
    rows = topics.all_topics(db())
    forms = []
    for t in rows:
        if edited is not None and edited._prefix == f"t{t.id}-":
            forms.append((t, edited))
        else:
            forms.append((t, TopicForm(prefix=f"t{t.id}", formdata=None, obj=t)))
    return render_template(
        "console/partners/topics.html",
        forms=forms,
        new=new or TopicForm(prefix="new", formdata=None),
        plain=PlainForm(),
        count=len(rows),
    ), status


def _topic(topic_id: int) -> Topic:
    t = db().get(Topic, topic_id)
    if t is None:
        abort(404)
    return t


@bp.get("/topics")
@require(PARTNERS_MANAGE)
def topics_list():
    return _topics_page()


@bp.post("/topics")
@require(PARTNERS_MANAGE)
def topics_add():
    form = TopicForm(prefix="new")
    if not form.validate_on_submit():
        return _topics_page(new=form, status=400)
    s = db()
    try:
        t = topics.add_topic(s, form.slug.data or "", form.name.data or "", form.description.data or "")
    except InvalidInput as err:
        s.rollback()
        error_on(form, err)
        return _topics_page(new=form, status=400)
    audit.record(s, g.staff, "topic.create", t, after=topics.summary(t), ip=client_ip())
    s.commit()
    flash(f"Added the topic {t.name!r} at the end of the order.", "ok")
    return redirect(url_for("console.topics_list"))


@bp.post("/topics/<int:topic_id>")
@require(PARTNERS_MANAGE)
def topics_change(topic_id: int):
    t = _topic(topic_id)
    form = TopicForm(prefix=f"t{topic_id}")
    if not form.validate_on_submit():
        return _topics_page(edited=form, status=400)
    s = db()
    try:
        before = topics.change_topic(s, t, form.name.data or "", form.description.data or "")
    except InvalidInput as err:
        s.rollback()
        error_on(form, err)
        return _topics_page(edited=form, status=400)
    audit.record(s, g.staff, "topic.edit", t, before=before, after=topics.summary(t), ip=client_ip())
    s.commit()
    flash(f"Saved {t.name!r}.", "ok")
    return redirect(url_for("console.topics_list"))


@bp.post("/topics/<int:topic_id>/move")
@require(PARTNERS_MANAGE)
def topics_move(topic_id: int):
    t = _topic(topic_id)
    step = -1 if request.form.get("direction") == "up" else 1
    s = db()
    before = [x.slug for x in topics.all_topics(s)]
    after = topics.move_topic(s, t, step)
    if before != after:
        audit.record(s, g.staff, "topic.move", t, before={"order": before}, after={"order": after}, ip=client_ip())
    s.commit()
    return redirect(url_for("console.topics_list") + f"#topic-{t.id}")
