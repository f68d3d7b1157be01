"""Web faces of the digest (shells only): view online, the public archive with its Atom
feed, and the editor's preview page with test-send.

- ``/view/<period>/<token>``: a recipient's own copy (signed "view" token from the email).
- ``/archive``, ``/archive/<period>``, ``/archive/feed.atom``: sent editions in their
  public form (every item, no greeting by name, no personal links).
- ``/preview/<token>``: the preview page for one edition (token from
  ``mailer edition preview-link``, revocable): as chosen topics/partners, in desktop and
  mobile widths, and a test-send form limited per link and per target address.
"""

from __future__ import annotations

from datetime import timezone
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, abort, render_template, request, url_for
from sqlalchemy import select

from mailer.content.models import Partner, Topic
from mailer.digest import preview
from mailer.digest.cache import prepared_editions
from mailer.digest.compose import archive_copy, copy_for, period_label
from mailer.digest.editions import EditionError, find_edition
from mailer.digest.models import SENDING, SENT, Edition
from mailer.mail.outgoing import Outgoing
from mailer.runtime import current as rt
from mailer.web.limits import keyed, retry_after_text, wait_for
from subscribers.service import recipients, subscriber_from_token
from subscribers.tokens import TokenError, Tokens

bp = Blueprint("digest", __name__)

PUBLISHED = (SENDING, SENT)  # editions recipients may already be reading


def _email_page(html: str, *, private: bool) -> Response:
    """An email's HTML served as a page. Its styles are inline, hence the CSP."""
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'"
    )
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    if private:
        resp.headers["Cache-Control"] = "private, no-store"
        resp.headers["X-Robots-Tag"] = "noindex"
    return resp


def _published(s, period: str) -> Edition:
    try:
        edition = find_edition(s, period)
    except EditionError:  # not a period at all
        abort(404)
    if edition is None or edition.status not in PUBLISHED:
        abort(404)
    return edition


@bp.get("/view/<period>/<token>")
def view_online(period: str, token: str):
    """The recipient's own copy, with their current choices and links."""
    r = rt()
    tokens = Tokens(r.settings.secret_key, r.settings.secret_key_fallbacks)
    with r.db.transaction() as s:
        try:
            sub = subscriber_from_token(s, tokens, "view", token)
        except TokenError as err:
            return render_template("subscribers/link_error.html", reason=err.reason), 400
        edition = _published(s, period)
        who = recipients(s, [sub.id])
        prepared = prepared_editions.get(s, edition, r.settings)
    copy = copy_for(prepared, who[0]) if who else None
    if copy is None:
        return render_template("digest/nothing.html", period=period_label(period), unsubscribed=not who), 200
    return _email_page(copy[0], private=True)


def _sent_editions(s) -> list[Edition]:
    return list(s.scalars(select(Edition).where(Edition.status == SENT).order_by(Edition.period.desc())))


@bp.get("/archive")
def archive_index():
    with rt().db.transaction() as s:
        editions = [(e.period, period_label(e.period), e.subject) for e in _sent_editions(s)]
    years: dict[str, list] = {}
    for period, label, subject in editions:
        years.setdefault(period[:4], []).append((period, label, subject))
    return render_template("digest/archive.html", years=years, title="Past editions")


@bp.get("/archive/<period>")
def archive_edition(period: str):
    r = rt()
    with r.db.transaction() as s:
        edition = _published(s, period)
        if edition.status != SENT:
            abort(404)
        prepared = prepared_editions.get(s, edition, r.settings)
    return _email_page(archive_copy(prepared)[0], private=False)


ATOM = "http://www.w3.org/2005/Atom"


@bp.get("/archive/feed.atom")
def archive_feed():
    """Atom (RFC 4287) feed of sent editions, built with ElementTree (it escapes for us)."""
    r = rt()
    base = r.settings.base_url
    with r.db.transaction() as s:
        editions = _sent_editions(s)[:24]
        rows = [(e.period, e.subject, e.preheader or e.intro, e.sent_at or e.built_at) for e in editions]
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")

    def sub(parent, tag, text=None, **attrs):
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    def stamp(dt):
        dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # A tag URI's authority is a DNS name (RFC 4151): the port of BASE_URL has no place there.
    host = urlsplit(base).hostname or "localhost"
    sub(feed, "title", "End Racism This Generation: monthly digest")
    sub(feed, "id", f"{base}/archive")
    sub(feed, "link", href=f"{base}/archive/feed.atom", rel="self", type="application/atom+xml")
    sub(feed, "link", href=f"{base}/archive", rel="alternate", type="text/html")
    sub(feed, "updated", stamp(rows[0][3]) if rows else "1970-01-01T00:00:00Z")
    author = sub(feed, "author")
    sub(author, "name", "End Racism This Generation")
    for period, subject, summary, when in rows:
        entry = sub(feed, "entry")
        sub(entry, "title", subject)
        sub(entry, "id", f"tag:{host},{period[:4]}:edition-{period}")
        sub(entry, "link", href=f"{base}/archive/{period}", rel="alternate", type="text/html")
        sub(entry, "updated", stamp(when))
        sub(entry, "summary", summary or f"The campaign digest for {period_label(period)}.")
    body = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return Response(body, mimetype="application/atom+xml")


# --- the editor's preview page -------------------------------------------------------

AS_SUBSCRIBER_REFUSED = (
    "A preview link shows the edition as chosen topics and partners only. "
    "To see one subscriber's copy, run `mailer edition preview PERIOD "
    "--subscriber EMAIL` on the server."
)


def _preview_edition(s, token: str) -> Edition:
    try:
        return preview.edition_for_preview(s, rt().settings, token)
    except preview.PreviewError as err:
        abort(Response(render_template("subscribers/link_error.html", reason=str(err)), 400))


def _int_list(name: str) -> list[int]:
    out = []
    for v in request.values.getlist(name):
        if v.strip().isdigit():
            out.append(int(v))
    return out


def _who(s):
    """The preview profile in the request: ``topic``/``partner`` ids.

    A ``subscriber`` address is refused without being looked up, so a link holder learns
    nothing about who is subscribed, nor anyone's name or choices.
    """
    if request.values.get("subscriber"):
        raise preview.PreviewError(AS_SUBSCRIBER_REFUSED)
    return preview.as_choices(s, topic_ids=_int_list("topic"), partner_ids=_int_list("partner"))


def _test_send_wait(token: str, address: str) -> int:
    """Count one test send through link ``token`` to ``address``: 0 if within
    ``PREVIEW_SENDS_PER_LINK`` and ``PREVIEW_SENDS_PER_ADDRESS`` this hour, else the seconds
    to wait."""
    settings = rt().settings
    return wait_for(
        (f"preview-link:{keyed(token)}", settings.preview_sends_per_link),
        (f"preview-to:{keyed(address.casefold())}", settings.preview_sends_per_address),
    )


@bp.route("/preview/<token>", methods=["GET", "POST"])
def preview_page(token: str):
    """Choose topics and partners; see desktop and mobile frames; send a test."""
    r = rt()
    error = notice = None
    wait = 0
    with r.db.transaction() as s:
        edition = _preview_edition(s, token)
        topics = list(s.scalars(select(Topic).order_by(Topic.position, Topic.id)))
        partners = list(s.scalars(select(Partner).order_by(Partner.name)))
        has_profile = bool(
            request.values.get("subscriber") or request.values.getlist("topic") or request.values.getlist("partner")
        )
        envelope = None
        if has_profile:
            try:
                who = _who(s)
                if request.method == "POST":
                    prepared = prepared_editions.get(s, edition, r.settings)
                    envelope = preview.make_test_send(prepared, r.settings, who, request.form.get("to", ""))
            except (EditionError, ValueError) as err:
                error = getattr(err, "message", None) or str(err)
        elif request.method == "POST":
            error = "Choose some topics and partners first."
        period, subject, status = edition.period, edition.subject, edition.status
    if envelope is not None:
        wait = _test_send_wait(token, envelope.recipient)
        if wait:
            error = (
                f"Too many test sends through this link or to {envelope.recipient} this hour; "
                f"nothing was sent. Try again in {retry_after_text(wait)}."
            )
            envelope = None
    if envelope is not None:
        try:
            Outgoing(r.settings, r.transport).one_off(envelope)  # signed, with a return path
            notice = f"Sent a test to {envelope.recipient}."
        except Exception as err:  # the transport's own message is the useful one here
            error = f"The test could not be sent: {err}"
        finally:
            r.transport.close()
    query = request.values.to_dict(flat=False)
    query.pop("to", None), query.pop("csrf_token", None)
    frame_url = url_for("digest.preview_frame", token=token, **query) if has_profile and not error else None
    page = render_template(
        "digest/preview.html",
        title=f"Preview: {subject}",
        period=period,
        subject=subject,
        status=status,
        topics=topics,
        partners=partners,
        frame_url=frame_url,
        error=error,
        notice=notice,
        chosen_topics=set(_int_list("topic")),
        chosen_partners=set(_int_list("partner")),
        to=request.form.get("to", ""),
    )
    if wait:
        return page, 429, {"Retry-After": str(wait)}
    return page, (400 if error else 200)


@bp.get("/preview/<token>/frame")
def preview_frame(token: str):
    r = rt()
    with r.db.transaction() as s:
        edition = _preview_edition(s, token)
        try:
            who = _who(s)
        except (EditionError, ValueError) as err:
            return Response(str(err), status=400, mimetype="text/plain")
        prepared = prepared_editions.get(s, edition, r.settings)
    copy = copy_for(prepared, who)
    if copy is None:
        return Response(
            "Those choices match no item in this edition: a subscriber with them would be skipped.",
            mimetype="text/plain",
        )
    if request.args.get("format") == "text":
        return Response(copy[1], mimetype="text/plain")
    return _email_page(copy[0], private=True)
