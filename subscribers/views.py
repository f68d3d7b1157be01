"""Public pages: subscribe, confirm, "email me my link", unsubscribe (web shell only);
the preference centre's pages are in :mod:`subscribers.preferences`.

Rules live in :mod:`subscribers.service` and friends; this module parses requests, owns
the transaction, and queues emails after the commit.
"""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailer.app import csrf
from mailer.content.models import Partner, Topic
from mailer.counters import Verdict
from mailer.delivery.actors import send_transactional
from mailer.queue import enqueue
from mailer.validation import InvalidInput
from mailer.web.helpers import client_ip, rt
from mailer.web.limits import limiter as _limiter
from mailer.web.limits import retry_after_header
from subscribers import service
from subscribers.forms import ButtonForm, LinkRequestForm, SubscribeForm
from subscribers.models import CONFIRMED, PENDING, UNSUBSCRIBED
from subscribers.suppression import email_hash
from subscribers.tokens import TokenError, Tokens

bp = Blueprint("subscribers", __name__)
HOUR = 3600


def _tokens() -> Tokens:
    s = rt().settings
    return Tokens(s.secret_key, s.secret_key_fallbacks)


def _ip() -> str | None:
    """The client's address for the consent ledger, when the operator records it."""
    return client_ip() if rt().settings.consent_log_ip else None


def _allowed(address: str) -> tuple[Verdict, bool]:
    """(the client's verdict, address within its limit) for one mail-sending request.

    The address is counted whether or not we know it, so the limit reveals nothing.
    """
    s = rt().settings
    client = _limiter().check(f"client:{client_ip()}", s.rate_per_client, HOUR)
    address_ok = _limiter().hit(f"address:{email_hash(address)}", s.rate_per_address, HOUR)
    return client, address_ok


def _too_many(verdict: Verdict):
    minutes = max(1, -(-verdict.retry_after // 60))
    wait = "a minute" if minutes == 1 else f"{minutes} minutes"
    return render_template("error.html", title="Too many requests",
                           message="We have had too many requests from your connection. "
                                   f"Please try again in {wait}."), 429, retry_after_header(verdict)


def _catalogue(session):
    topics = list(session.scalars(select(Topic).order_by(Topic.position, Topic.id)))
    partners = list(session.scalars(select(Partner).where(Partner.active).order_by(Partner.name)))
    return topics, partners


_ERROR_STATUS = {"expired": 410, "revoked": 410, "cancelled": 410}


def _link_error(err: TokenError, purpose: str, token: str | None = None):
    """The page for a link we cannot honour. An expired manage link (``token`` given) gets
    a button that mails a fresh one to the address it was for."""
    renew = purpose == "manage" and err.kind == "expired" and token is not None
    return render_template(
        "subscribers/link_error.html", reason=err.reason, kind=err.kind, purpose=purpose,
        renew_url=url_for("subscribers.renew", token=token) if renew else None,
        button=ButtonForm(formdata=None) if renew else None,
        manage_days=rt().settings.manage_link_max_age_days), _ERROR_STATUS.get(err.kind, 400)


def _attach(form, err: InvalidInput) -> None:
    field = getattr(form, err.field, None)
    if field is not None:
        field.errors = [*field.errors, err.message]
    else:
        form.form_errors.append(err.message)


def _choices(s, form):
    return service.validate_choices(s, form.name.data, form.organisation.data,
                                    form.topics.data or [], form.partners.data or [],
                                    form.organisation_type.data, form.practice_code.data)


@bp.app_errorhandler(CSRFError)
def csrf_failed(_err):
    return render_template("error.html", title="This form has expired",
                           message="This form expired or was not sent from our page. Go back, "
                                   "reload the page and try again."), 400


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
            choices = _choices(s, form)
            address = service.normalise_email(form.email.data)
        except InvalidInput as err:
            s.rollback()
            _attach(form, err)
            return render_template("subscribers/subscribe.html", form=form), 400
        client, address_ok = _allowed(address)
        if not client.allowed:
            return _too_many(client)
        if not address_ok:
            # Same page as a success: a flood of requests must not flood the inbox either.
            return redirect(url_for("subscribers.check_email"))
        try:
            with s.begin_nested():
                outcome = service.subscribe(s, address, choices, ip=_ip())
        except IntegrityError:
            # The same new address sent twice at once: the other request mails its owner.
            return redirect(url_for("subscribers.check_email"))
        subscriber_id = outcome.subscriber.id
    # After the commit: the worker must find the row it is asked to mail.
    enqueue(send_transactional, outcome.email_to_send, subscriber_id)
    return redirect(url_for("subscribers.check_email"))


@bp.get("/subscribe/check-email")
def check_email():
    # The same page whether the address was new or known, so the form reveals nothing.
    return render_template("subscribers/check_email.html",
                           days=rt().settings.confirm_max_age_days)


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    settings = rt().settings
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, _tokens(), "confirm", token,
                                                settings.confirm_max_age_days * 86400)
        except TokenError as err:
            if err.kind == "expired":
                # An old link of someone who did confirm in time: tell them they are in.
                try:
                    sub = service.subscriber_from_token(s, _tokens(), "confirm", token)
                except TokenError:
                    sub = None
                if sub is not None and sub.status == CONFIRMED:
                    return _confirmed_page(sub)
            return _link_error(err, "confirm")
        form = ButtonForm()
        if request.method == "GET" or not form.validate_on_submit():
            # Confirming takes a click on a button: mail scanners that fetch every link
            # must not confirm an address on its owner's behalf. The page shows what the
            # request asks for, since anyone may have typed it.
            page = dict(sub=sub, form=form, requested=service.pending_choices(s, sub))
            if request.method == "POST":
                return render_template("subscribers/confirm.html", **page,
                                       error="Your session expired; press the button again."), 400
            return render_template("subscribers/confirm.html", **page)
        try:
            service.confirm(s, sub, ip=_ip())
        except TokenError as err:
            return _link_error(err, "confirm")
        return _confirmed_page(sub)


def _confirmed_page(sub):
    manage_url = url_for("subscribers.manage", token=_tokens().make("manage", sub.id, sub.token_version))
    return render_template("subscribers/confirmed.html", sub=sub, manage_url=manage_url)


@bp.route("/manage", methods=["GET", "POST"])
def request_link():
    """"Email me my link": the same answer whether or not the address is known."""
    form = LinkRequestForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("subscribers/request_link.html", form=form), status
    try:
        address = service.normalise_email(form.email.data)
    except InvalidInput as err:
        _attach(form, err)
        return render_template("subscribers/request_link.html", form=form), 400
    client, address_ok = _allowed(address)
    if not client.allowed:
        return _too_many(client)
    kind, subscriber_id = None, None
    if address_ok:
        with rt().db.transaction() as s:
            sub = service.find(s, address)
            if sub is not None and sub.status in (CONFIRMED, UNSUBSCRIBED):
                kind, subscriber_id = "link", sub.id
            elif sub is not None and sub.status == PENDING:
                kind, subscriber_id = "confirm", sub.id  # not confirmed yet: resend that link
    if kind:
        enqueue(send_transactional, kind, subscriber_id)
    return render_template("subscribers/link_sent.html")


@bp.route("/u/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mail clients POST here with no cookie and no CSRF token
def unsubscribe(token: str):
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, _tokens(), "unsubscribe", token)
        except TokenError as err:
            return _link_error(err, "unsubscribe")
        manage_token = _tokens().make("manage", sub.id, sub.token_version)
        page = dict(sub=sub, manage_token=manage_token, button=ButtonForm(formdata=None))
        if request.method == "GET":
            # Link scanners fetch every URL: a GET only asks.
            return render_template("subscribers/unsubscribe.html", done=sub.status == UNSUBSCRIBED, **page)
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            return render_template("subscribers/unsubscribe.html", done=False,
                                   error="Press the button to unsubscribe.", **page), 400
        # Our own page's button says so; a mail client's one-click POST does not.
        source = "link" if request.form.get("from") == "page" else "one-click"
        service.unsubscribe(s, sub, source=source, ip=_ip())
        # 200 and no redirect: RFC 8058 clients treat anything else as a failure.
        return render_template("subscribers/unsubscribe.html", done=True, **page)


# The preference centre's routes live in their own module, on this blueprint.
from subscribers import preferences  # noqa: E402,F401
