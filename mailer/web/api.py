"""The partner API: ``POST /api/v1/items``, ``GET /api/v1/items/<id>`` and the OpenAPI
document at ``/api/v1/openapi.json``.

Bearer tokens (see :mod:`mailer.content.partners`), JSON in and out, the same checks as
the form (:func:`mailer.content.intake.check_draft`). Errors are JSON naming the field:
``{"error": {"code": "invalid", "field": "link", "message": "..."}}``. An
``Idempotency-Key`` header makes a retried POST return the item the first one created
instead of a second item; the same key with a different body is refused (409).

The form's limits apply (see :mod:`mailer.web.partners`): past
``PARTNER_SUBMISSIONS_PER_HOUR`` items a partner gets 429 with ``Retry-After`` and
nothing is stored (a replayed Idempotency-Key is not counted); notices go only to the
partner's registered contact, never to the ``contact_email`` in the body.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from mailer.content.intake import ItemDraft, submit_item
from mailer.content.models import Item, Topic
from mailer.content.notices import RECEIPT, decision_kind, notice_address
from mailer.content.partners import partner_for_api_token
from mailer.runtime import current as rt
from mailer.validation import InvalidInput
from mailer.web.limits import retry_after_text
from mailer.web.openapi import openapi_document
from mailer.web.partners import notice_allowed, queue_notice, submission_wait

bp = Blueprint("api", __name__, url_prefix="/api/v1")

STRING_FIELDS = (
    "kind",
    "title",
    "summary",
    "body",
    "link",
    "image_url",
    "image_alt",
    "event_date",
    "event_time",
    "event_place",
    "publish_from",
    "publish_until",
    "contact_email",
)
REQUIRED = ("kind", "title", "summary", "link", "topics")
KEY_MAX = 200
# An item is an object holding a list of slugs; anything nested deeper than this is not one,
# and refusing it early keeps a hostile body from exhausting the parser's recursion.
MAX_DEPTH = 8


def error(status: int, code: str, message: str, field: str | None = None, headers=None):
    body = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    return jsonify(body), status, headers or {}


@bp.errorhandler(HTTPException)
def http_error(e: HTTPException):
    return error(e.code or 500, e.name.lower().replace(" ", "_"), e.description or e.name)


def _too_deep(value, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` nests lists/objects more than ``limit`` levels (stops early)."""
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, limit - 1) for v in value)
    return False


def _json_body():
    """The parsed JSON body (None if it is not JSON); InvalidInput if it nests too deeply.

    json raises RecursionError, not ValueError, past a thousand levels or so: that would
    be an unauthenticated 500 without this check.
    """
    try:
        data = request.get_json(silent=True)
        too_deep = _too_deep(data)
    except RecursionError:
        data, too_deep = None, True
    if too_deep:
        raise InvalidInput("request", f"the JSON body is nested too deeply (more than {MAX_DEPTH} levels).")
    return data


def _bearer() -> str:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _unauthorised():
    return error(
        401,
        "unauthorised",
        "Send a valid, unrevoked API token as 'Authorization: Bearer ...'.",
        headers={"WWW-Authenticate": 'Bearer realm="partner-api", error="invalid_token"'},
    )


def item_json(item: Item) -> dict:
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return {
        "id": item.id,
        "status": item.status,
        "kind": item.kind,
        "title": item.title,
        "summary": item.summary,
        "body": item.body_markdown,
        "body_html": item.body_html,
        "link": item.link,
        "image_url": item.image_url,
        "image_alt": item.image_alt,
        "topics": [t.slug for t in item.topics],
        "event_starts_at": iso(item.event_starts_at),
        "event_place": item.event_place,
        "publish_from": iso(item.publish_from),
        "publish_until": iso(item.publish_until),
        "contact_email": item.contact_email,
        "featured": item.featured,
        "submitted_at": iso(item.submitted_at),
        "decided_at": iso(item.decided_at),
        "decision_reason": item.decision_reason if item.status == "rejected" else None,
    }


def _draft(session, data) -> ItemDraft:
    """An ItemDraft from the JSON body; InvalidInput for wrong shapes or unknown names."""
    if not isinstance(data, dict):
        raise InvalidInput("request", "the request body must be a JSON object.")
    unknown = sorted(set(data) - set(STRING_FIELDS) - {"topics"})
    if unknown:
        raise InvalidInput(unknown[0], "is not a field of an item.")
    for name in REQUIRED:
        if data.get(name) in (None, "", []):
            raise InvalidInput(name, "is required.")
    for name in STRING_FIELDS:
        if name in data and data[name] is not None and not isinstance(data[name], str):
            raise InvalidInput(name, "must be a string.")
    slugs = data["topics"]
    if not isinstance(slugs, list) or not all(isinstance(x, str) for x in slugs) or len(slugs) > 50:
        raise InvalidInput("topics", "must be a list of topic slugs.")
    found = dict(session.execute(select(Topic.slug, Topic.id).where(Topic.slug.in_(slugs))).all())
    missing = [x for x in slugs if x not in found]
    if missing:
        raise InvalidInput("topics", f"unknown topic {missing[0][:60]!r}; see GET /api/v1/openapi.json.")
    values = {name: data.get(name) or "" for name in STRING_FIELDS}
    return ItemDraft(topic_ids=sorted(set(found.values())), **values)


@bp.post("/items")
def create_item():
    token = _bearer()
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > KEY_MAX or any(ord(c) < 33 or ord(c) > 126 for c in key):
        return error(
            400, "invalid", f"Idempotency-Key must be up to {KEY_MAX} visible ASCII characters.", "Idempotency-Key"
        )
    try:
        data = _json_body()
    except InvalidInput as err:
        return error(400, "invalid", err.message, err.field)
    db = rt().db
    for attempt in (1, 2):  # a second try only after losing a race on the same key
        try:
            with db.transaction() as s:
                partner = partner_for_api_token(s, token)
                if partner is None:
                    return _unauthorised()
                try:
                    draft = _draft(s, data)
                except InvalidInput as err:
                    return error(422 if data is not None else 400, "invalid", err.message, err.field)
                source_key = f"api:{key}" if key else None
                if source_key:
                    existing = s.scalar(
                        select(Item).where(Item.partner_id == partner.id, Item.source_key == source_key)
                    )
                    if existing is not None:
                        if existing.source_fingerprint != draft.fingerprint():
                            return error(
                                409,
                                "idempotency_conflict",
                                "This Idempotency-Key was used for a different request.",
                                "Idempotency-Key",
                            )
                        return jsonify(item_json(existing)), 200, {"Idempotent-Replayed": "true"}
                try:
                    item = submit_item(s, partner, draft, today=date.today(), source="api", source_key=source_key)
                except InvalidInput as err:
                    s.rollback()
                    return error(422, "invalid", err.message, err.field)
                wait = submission_wait(partner)  # counted only for an item that passed every check
                if wait:
                    limit = rt().settings.partner_submissions_per_hour
                    s.rollback()
                    return error(
                        429,
                        "rate_limited",
                        f"This partner has sent {limit} items this hour, the most we take in "
                        f"an hour. Nothing was stored: send it again in {retry_after_text(wait)} "
                        f"(Retry-After: {wait} seconds).",
                        headers={"Retry-After": str(wait)},
                    )
                body, item_id = item_json(item), item.id
                notice = decision_kind(item) or RECEIPT
                emailed = notice_allowed(notice_address(item))
        except IntegrityError:
            if attempt == 2 or not key:
                raise
            continue  # the other request committed first: answer as a replay
        break
    if emailed:
        queue_notice(notice, item_id)
    return jsonify(body), 201, {"Location": f"/api/v1/items/{item_id}"}


@bp.get("/items/<int:item_id>")
def get_item(item_id: int):
    with rt().db.transaction() as s:
        partner = partner_for_api_token(s, _bearer())
        if partner is None:
            return _unauthorised()
        item = s.get(Item, item_id)
        if item is None or item.partner_id != partner.id:  # another partner's item is not there
            return error(404, "not_found", f"You have no item {item_id}.")
        return jsonify(item_json(item))


@bp.get("/openapi.json")
def openapi():
    with rt().db.transaction() as s:
        topics = list(s.scalars(select(Topic.slug).order_by(Topic.position, Topic.id)))
    return jsonify(openapi_document(rt().settings.base_url, topics))
