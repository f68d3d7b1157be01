"""The preference centre (no login): change, pause, resume, re-subscribe, replace links,
download and erase, reached through the signed manage link in every email. The same page
lists every group the address is a member of, with its delivery choice and a leave
button (their forms post to each membership's own link, see :mod:`mailer.web.groups`),
and the group emails' manage links open it too (:func:`page_for`).

Web shell only (URL rules in :mod:`mailer.web.subscribers`); rules live in
:mod:`subscribers.service` and :mod:`subscribers.rights`.
"""

from __future__ import annotations

import json

from flask import Response, render_template, request, url_for

from mailer.actors.transactional import send_transactional
from mailer.db import utcnow
from mailer.delivery.history import deliveries_of
from mailer.inbound import erasure
from mailer.mail.outbox import remove_messages_to
from mailer.runtime import current as rt
from mailer.validation import InvalidInput
from mailer.web.subscribers.common import (
    allowed,
    attach_error,
    catalogue,
    choices,
    consent_ip,
    group_rows,
    link_error,
    tokens,
    too_many,
)
from mailer.web.subscribers.forms import ButtonForm, PauseForm, PreferencesForm
from subscribers import rights, service
from subscribers.models import CONFIRMED, PENDING, UNSUBSCRIBED
from subscribers.tokens import TokenError

# A token for the digest's choices only, minted when a group email's manage link opens the
# page: group members reply quoting their footer to the whole list, so that link must not
# open anyone's data download, erasure or link replacement.
CHOICES = "manage-choices"


def _limited(token: str) -> bool:
    try:
        tokens().read("manage", token)
        return False
    except TokenError:
        return True


def _manage_page(s, sub, form, token, status=200, **extra):
    return render_template(
        "subscribers/manage.html",
        sub=sub,
        limited=_limited(token),
        email=sub.email,
        memberships=group_rows(s, sub.email, extra.pop("posted", None)),
        form=form,
        token=token,
        pause_form=extra.pop("pause_form", None) or PauseForm(formdata=None),
        button=ButtonForm(formdata=None),
        paused=service.is_paused(sub, utcnow().date()),
        unsubscribe_url=url_for(
            "subscribers.unsubscribe", token=tokens().make("unsubscribe", sub.id, sub.token_version)
        ),
        **extra,
    ), status


def page_for(s, sub, status=200, **extra):
    """``sub``'s preference page as a group email's manage link opens it (``extra`` says
    what was just saved there): the digest's choices and every group, but not the data
    pages (its forms carry a :data:`CHOICES` token)."""
    token = tokens().make(CHOICES, sub.id, sub.token_version)
    topics, partners = catalogue(s)
    form = PreferencesForm(formdata=None, obj=sub).set_choices(topics, partners)
    form.topics.data = [t.id for t in sub.topics]
    form.partners.data = [p.id for p in sub.partners]
    return _manage_page(s, sub, form, token, status, **extra)


def _manage_sub(s, token, *, full: bool = False):
    """The subscriber of a manage link younger than MANAGE_LINK_MAX_AGE_DAYS, or TokenError.

    Preference access (changes, data download, erasure) needs a recent link, so a manage
    link in an old, forwarded or leaked email stops opening someone's data; unsubscribe
    links are not limited (see :func:`mailer.web.subscribers.pages.unsubscribe`). A
    :data:`CHOICES` token serves too unless ``full`` (data, erasure, link replacement).
    """
    max_age = rt().settings.manage_link_max_age_days * 86400
    try:
        return service.subscriber_from_token(s, tokens(), "manage", token, max_age)
    except TokenError as err:
        if full or err.kind != "wrong-purpose":
            raise
        try:
            return service.subscriber_from_token(s, tokens(), CHOICES, token, max_age)
        except TokenError as choices_err:
            if choices_err.kind == "wrong-purpose":
                raise err from None  # another kind of link: say what it is for
            raise


def _manage_error(err: TokenError, token: str):
    return link_error(err, "manage", token)


def manage(token: str):
    with rt().db.transaction() as s:
        try:
            sub = _manage_sub(s, token)
        except TokenError as err:
            return _manage_error(err, token)
        topics, partners = catalogue(s)
        form = PreferencesForm(obj=None if request.method == "POST" else sub).set_choices(topics, partners)
        if request.method == "GET":
            form.topics.data = [t.id for t in sub.topics]
            form.partners.data = [p.id for p in sub.partners]
        if request.method == "GET" or sub.status == UNSUBSCRIBED:
            return _manage_page(s, sub, form, token)
        if not form.validate_on_submit():
            return _manage_page(s, sub, form, token, 400)
        try:
            picked = choices(s, form)
        except InvalidInput as err:  # raised before anything changed
            attach_error(form, err)
            return _manage_page(s, sub, form, token, 400)
        service.update_preferences(s, sub, picked, ip=consent_ip())
        return _manage_page(s, sub, form, token, saved="Your preferences are saved. They apply from the next digest.")


def _action(token: str, form_cls, act, template="subscribers/manage.html", *, full: bool = False):
    """Run ``act(session, sub, form)`` for a POST from the preference centre."""
    with rt().db.transaction() as s:
        try:
            sub = _manage_sub(s, token, full=full)
        except TokenError as err:
            return _manage_error(err, token)
        form = form_cls()
        topics, partners = catalogue(s)
        prefs = PreferencesForm(formdata=None, obj=sub).set_choices(topics, partners)
        prefs.topics.data = [t.id for t in sub.topics]
        prefs.partners.data = [p.id for p in sub.partners]
        if not form.validate():
            errors = [e for f in form for e in f.errors]
            msg = (
                "This form expired or was not sent from our page. Please try again."
                if form.csrf_token.errors
                else " ".join(errors)
            )
            return _manage_page(
                s, sub, prefs, token, 400, error=msg, pause_form=form if isinstance(form, PauseForm) else None
            )
        try:
            result = act(s, sub, form)
        except InvalidInput as err:  # the domain checks before it changes anything
            return _manage_page(
                s, sub, prefs, token, 400, error=err.message, pause_form=form if isinstance(form, PauseForm) else None
            )
        if isinstance(result, tuple):  # (response, email to queue after the commit)
            response, email = result
        else:
            response, email = result, None
        if response is None:
            response = _manage_page(s, sub, prefs, token, saved=getattr(act, "message", "Saved."))
    if email:
        rt().queue.send(send_transactional, *email)
    return response


def pause(token: str):
    def act(s, sub, form):
        if sub.status != CONFIRMED:
            raise InvalidInput("until", "Only an active subscription can be paused.")
        service.pause(s, sub, form.until.data, today=utcnow().date(), ip=consent_ip())

    act.message = "Your digest is paused. It starts again automatically on the date you chose."
    return _action(token, PauseForm, act)


def resume(token: str):
    def act(s, sub, form):
        service.resume(s, sub, ip=consent_ip())

    act.message = "Your digest is no longer paused."
    return _action(token, ButtonForm, act)


def resubscribe(token: str):
    def act(s, sub, form):
        service.resubscribe(s, sub, ip=consent_ip())
        return (
            render_template("subscribers/check_email.html", days=rt().settings.confirm_max_age_days),
            ("confirm", sub.id),
        )

    return _action(token, ButtonForm, act)


def revoke(token: str):
    def act(s, sub, form):
        service.revoke_links(s, sub, ip=consent_ip())
        return render_template("subscribers/revoked.html", sub=sub), ("link", sub.id)

    return _action(token, ButtonForm, act, full=True)


def renew(token: str):
    """Mail a fresh manage link to the address an expired one was for (the button on the
    expired-link page). The link must still be genuine and not revoked; only its age is
    forgiven, and only to send its owner a new one. Limited like "email me my link"."""
    form = ButtonForm()
    if not form.validate_on_submit():
        return render_template(
            "error.html",
            title="Please try again",
            message="This form expired. Open your link again and press the button.",
        ), 400
    with rt().db.transaction() as s:
        try:
            sub = service.subscriber_from_token(s, tokens(), "manage", token)
        except TokenError as err:
            return link_error(err, "manage")
        client, address_ok = allowed(sub.email)
        if not client.allowed:
            return too_many(client)
        kind = "confirm" if sub.status == PENDING else "link"  # not confirmed yet: that link
        subscriber_id = sub.id
    if address_ok:
        rt().queue.send(send_transactional, kind, subscriber_id)
    return render_template("subscribers/link_sent.html", renewed=True)


def download(token: str):
    with rt().db.transaction() as s:
        try:
            sub = _manage_sub(s, token, full=True)
        except TokenError as err:
            return _manage_error(err, token)
        data = rights.export_data(s, sub, deliveries_of(s, sub.id))
    body = json.dumps(data, indent=2, ensure_ascii=False)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-digest-data.json"', "Cache-Control": "no-store"},
    )


def erase(token: str):
    with rt().db.transaction() as s:
        try:
            sub = _manage_sub(s, token, full=True)
        except TokenError as err:
            return _manage_error(err, token)
        form = ButtonForm()
        if request.method == "GET":
            return render_template("subscribers/erase.html", sub=sub, form=form)
        if not form.validate_on_submit():
            return render_template(
                "subscribers/erase.html", sub=sub, form=form, error="This form expired. Please press the button again."
            ), 400
        address = erasure.erase_subscriber(s, sub, source="link")
    remove_messages_to(rt().settings.outbox_dir, address)  # after the commit: files are not transactional
    return render_template("subscribers/erased.html")
