"""Public pages: subscribe, confirm, manage preferences, unsubscribe (web shell only).

Rules live in :mod:`subscribers.service`; this module parses requests, owns the
transaction, and queues emails after the commit.
"""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select

from mailer.app import csrf
from mailer.content.models import Partner, Topic
from mailer.delivery.actors import send_transactional
from mailer.queue import enqueue
from mailer.validation import InvalidInput
from mailer.web.helpers import client_ip, rt
from subscribers import service
from subscribers.forms import PreferencesForm, SubscribeForm
from subscribers.models import UNSUBSCRIBED
from subscribers.tokens import TokenError, Tokens

bp = Blueprint("subscribers", __name__)


def _tokens() -> Tokens:
    s = rt().settings
    return Tokens(s.secret_key, s.secret_key_fallbacks)


def _catalogue(session):
    topics = list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))
    partners = list(session.scalars(select(Partner).where(Partner.active).order_by(Partner.name)))
    return topics, partners


def _link_error(err: TokenError):
    return render_template("subscribers/link_error.html", reason=err.reason), 400


def _attach(form, err: InvalidInput) -> None:
    field = getattr(form, err.field, None)
    if field is not None:
        field.errors = [*field.errors, err.message]
    else:
        form.form_errors.append(err.message)


@bp.get("/")
def home():
    return redirect(url_for("subscribers.subscribe"))


@bp.route("/subscribe", methods=["GET", "POST"])
def subscribe():
    with rt().db.transaction() as s:
        topics, partners = _catalogue(s)
        form = SubscribeForm().set_choices(topics, partners)
        if not form.validate_on_submit():
            status = 400 if request.method == "POST" else 200
            return render_template("subscribers/subscribe.html", form=form), status
        try:
            with s.begin_nested():  # a refusal undoes only this attempt
                choices = service.validate_choices(s, form.name.data, form.organisation.data,
                                                   form.topics.data or [], form.partners.data or [])
                outcome = service.subscribe(s, form.email.data, choices, ip=client_ip())
        except InvalidInput as err:
            _attach(form, err)
            return render_template("subscribers/subscribe.html", form=form), 400
        subscriber_id = outcome.subscriber.id
    # After the commit: the worker must find the row it is asked to mail.
    enqueue(send_transactional, outcome.email_to_send, subscriber_id)
    return redirect(url_for("subscribers.check_email"))


@bp.get("/subscribe/check-email")
def check_email():
    # The same page whether the address was new or known, so the form reveals nothing.
    return render_template("subscribers/check_email.html")


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    settings = rt().settings
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, _tokens(), "confirm", token,
                                                settings.confirm_max_age_days * 86400)
        except TokenError as err:
            return _link_error(err)
        form = PreferencesForm()  # only for its CSRF token
        if request.method == "GET" or not form.validate_on_submit():
            # Confirming takes a click on a button: mail scanners that fetch every link
            # must not confirm an address on its owner's behalf.
            if request.method == "POST":
                return render_template("subscribers/confirm.html", sub=sub, form=form,
                                       error="Your session expired; press the button again."), 400
            return render_template("subscribers/confirm.html", sub=sub, form=form)
        try:
            service.confirm(s, sub, ip=client_ip())
        except TokenError as err:
            return _link_error(err)
        manage_url = url_for("subscribers.manage", token=_tokens().make("manage", sub.id, sub.token_version))
        return render_template("subscribers/confirmed.html", sub=sub, manage_url=manage_url)


@bp.route("/manage/<token>", methods=["GET", "POST"])
def manage(token: str):
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, _tokens(), "manage", token)
        except TokenError as err:
            return _link_error(err)
        topics, partners = _catalogue(s)
        form = PreferencesForm(obj=None if request.method == "POST" else sub).set_choices(topics, partners)
        if request.method == "GET":
            form.topics.data = [t.id for t in sub.topics]
            form.partners.data = [p.id for p in sub.partners]
        unsubscribe_url = url_for("subscribers.unsubscribe", token=_tokens().make("unsubscribe", sub.id, sub.token_version))
        page = dict(sub=sub, form=form, unsubscribe_url=unsubscribe_url)
        if request.method == "GET" or sub.status == UNSUBSCRIBED:
            return render_template("subscribers/manage.html", **page)
        if not form.validate_on_submit():
            return render_template("subscribers/manage.html", **page), 400
        try:
            choices = service.validate_choices(s, form.name.data, form.organisation.data,
                                               form.topics.data or [], form.partners.data or [])
        except InvalidInput as err:
            _attach(form, err)
            return render_template("subscribers/manage.html", **page), 400
        service.update_preferences(s, sub, choices, ip=client_ip())
        return render_template("subscribers/manage.html", saved=True, **page)


@bp.route("/u/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mail clients POST here with no cookie and no CSRF token
def unsubscribe(token: str):
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, _tokens(), "unsubscribe", token)
        except TokenError as err:
            return _link_error(err)
        if request.method == "GET":
            # Link scanners fetch every URL: a GET only asks.
            return render_template("subscribers/unsubscribe.html", sub=sub,
                                   done=sub.status == UNSUBSCRIBED)
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            return render_template("subscribers/unsubscribe.html", sub=sub, done=False,
                                   error="Press the button to unsubscribe."), 400
        # Our own page's button says so; a mail client's one-click POST does not.
        source = "link" if request.form.get("from") == "page" else "one-click"
        service.unsubscribe(s, sub, source=source, ip=client_ip())
        # 200 and no redirect: RFC 8058 clients treat anything else as a failure.
        return render_template("subscribers/unsubscribe.html", sub=sub, done=True)
