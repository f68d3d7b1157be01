"""Public pages: subscribe, confirm, "email me my link", unsubscribe (web shell only);
the preference centre's pages are in :mod:`mailer.web.subscribers.preferences`, the URL
rules in :mod:`mailer.web.subscribers`.

Rules live in :mod:`subscribers.service` and friends; this module parses requests, owns
the transaction, and queues emails after the commit.
"""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from mailer.actors.transactional import send_transactional
from mailer.runtime import current as rt
from mailer.validation import InvalidInput, email_address
from mailer.web import csrf
from mailer.web.subscribers.common import (
    allowed,
    attach_error,
    catalogue,
    choices,
    consent_ip,
    link_error,
    tokens,
    too_many,
)
from mailer.web.subscribers.forms import ButtonForm, LinkRequestForm, SubscribeForm
from subscribers import service
from subscribers.models import CONFIRMED, PENDING, UNSUBSCRIBED
from subscribers.tokens import TokenError


def home():
    return redirect(url_for("subscribers.subscribe"))


def subscribe():
    with rt().db.transaction() as s:
        topics, partners = catalogue(s)
        form = SubscribeForm().set_choices(topics, partners)
        if not form.validate_on_submit():
            status = 400 if request.method == "POST" else 200
            return render_template("subscribers/subscribe.html", form=form), status
        try:
            picked = choices(s, form)
            address = email_address("email", form.email.data)
        except InvalidInput as err:
            s.rollback()
            attach_error(form, err)
            return render_template("subscribers/subscribe.html", form=form), 400
        client, address_ok = allowed(address)
        if not client.allowed:
            return too_many(client)
        if not address_ok:
            # Same page as a success: a flood of requests must not flood the inbox either.
            return redirect(url_for("subscribers.check_email"))
        try:
            with s.begin_nested():
                outcome = service.subscribe(s, address, picked, ip=consent_ip())
        except IntegrityError:
            # The same new address sent twice at once: the other request mails its owner.
            return redirect(url_for("subscribers.check_email"))
        subscriber_id = outcome.subscriber.id
    # After the commit: the worker must find the row it is asked to mail.
    rt().queue.send(send_transactional, outcome.email_to_send, subscriber_id)
    return redirect(url_for("subscribers.check_email"))


def check_email():
    # The same page whether the address was new or known, so the form reveals nothing.
    return render_template("subscribers/check_email.html", days=rt().settings.confirm_max_age_days)


def confirm(token: str):
    settings = rt().settings
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, tokens(), "confirm", token, settings.confirm_max_age_days * 86400)
        except TokenError as err:
            if err.kind == "expired":
                # An old link of someone who did confirm in time: tell them they are in.
                try:
                    sub = service.subscriber_from_token(s, tokens(), "confirm", token)
                except TokenError:
                    sub = None
                if sub is not None and sub.status == CONFIRMED:
                    return _confirmed_page(sub)
            return link_error(err, "confirm")
        form = ButtonForm()
        if request.method == "GET" or not form.validate_on_submit():
            # Confirming takes a click on a button: mail scanners that fetch every link
            # must not confirm an address on its owner's behalf. The page shows what the
            # request asks for, since anyone may have typed it.
            page = dict(sub=sub, form=form, requested=service.pending_choices(s, sub))
            if request.method == "POST":
                return render_template(
                    "subscribers/confirm.html", **page, error="Your session expired; press the button again."
                ), 400
            return render_template("subscribers/confirm.html", **page)
        try:
            service.confirm(s, sub, ip=consent_ip())
        except TokenError as err:
            return link_error(err, "confirm")
        return _confirmed_page(sub)


def _confirmed_page(sub):
    manage_url = url_for("subscribers.manage", token=tokens().make("manage", sub.id, sub.token_version))
    return render_template("subscribers/confirmed.html", sub=sub, manage_url=manage_url)


def request_link():
    """ "Email me my link": the same answer whether or not the address is known."""
    form = LinkRequestForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("subscribers/request_link.html", form=form), status
    try:
        address = email_address("email", form.email.data)
    except InvalidInput as err:
        attach_error(form, err)
        return render_template("subscribers/request_link.html", form=form), 400
    client, address_ok = allowed(address)
    if not client.allowed:
        return too_many(client)
    kind, subscriber_id = None, None
    if address_ok:
        with rt().db.transaction() as s:
            sub = service.find(s, address)
            if sub is not None and sub.status in (CONFIRMED, UNSUBSCRIBED):
                kind, subscriber_id = "link", sub.id
            elif sub is not None and sub.status == PENDING:
                kind, subscriber_id = "confirm", sub.id  # not confirmed yet: resend that link
    if kind:
        rt().queue.send(send_transactional, kind, subscriber_id)
    return render_template("subscribers/link_sent.html")


@csrf.exempt  # RFC 8058: mail clients POST here with no cookie and no CSRF token
def unsubscribe(token: str):
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, tokens(), "unsubscribe", token)
        except TokenError as err:
            return link_error(err, "unsubscribe")
        manage_token = tokens().make("manage", sub.id, sub.token_version)
        page = dict(sub=sub, manage_token=manage_token, button=ButtonForm(formdata=None))
        if request.method == "GET":
            # Link scanners fetch every URL: a GET only asks.
            return render_template("subscribers/unsubscribe.html", done=sub.status == UNSUBSCRIBED, **page)
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            return render_template(
                "subscribers/unsubscribe.html", done=False, error="Press the button to unsubscribe.", **page
            ), 400
        # Our own page's button says so; a mail client's one-click POST does not.
        source = "link" if request.form.get("from") == "page" else "one-click"
        service.unsubscribe(s, sub, source=source, ip=consent_ip())
        # 200 and no redirect: RFC 8058 clients treat anything else as a failure.
        return render_template("subscribers/unsubscribe.html", done=True, **page)
