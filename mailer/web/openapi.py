"""The OpenAPI 3.1 description of the partner API, built from the same limits the
checks use so the document cannot drift from the code."""

from __future__ import annotations

from mailer.content.intake import ALT_MAX, PLACE_MAX, SUMMARY_MAX, TITLE_MAX
from mailer.content.models import ITEM_KINDS, ITEM_STATUSES
from mailer.content.sanitize import BODY_MAX


def _s(description: str, **extra) -> dict:
    return {"type": "string", "description": description, **extra}


def openapi_document(base_url: str, topic_slugs: list[str]) -> dict:
    new_item = {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "title", "summary", "link", "topics"],
        "properties": {
            "kind": _s("Kind of item.", enum=list(ITEM_KINDS)),
            "title": _s("Headline; no control characters.", maxLength=TITLE_MAX),
            "summary": _s("Shown in the digest.", maxLength=SUMMARY_MAX),
            "body": _s(
                "Optional full text in Markdown; sanitised (no scripts, styles, iframes, "
                "event handlers, javascript: or data: links).",
                maxLength=BODY_MAX,
            ),
            "link": _s("Read-more link, http or https.", format="uri"),
            "topics": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": topic_slugs}},
            "image_url": _s("Optional image, http or https.", format="uri"),
            "image_alt": _s("Required with image_url.", maxLength=ALT_MAX),
            "event_date": _s("Required for events.", format="date"),
            "event_time": _s("Optional start time, HH:MM.", pattern="^[0-2][0-9]:[0-5][0-9]$"),
            "event_place": _s("Required for events.", maxLength=PLACE_MAX),
            "publish_from": _s("Not before this day (embargo).", format="date"),
            "publish_until": _s("Not after this day (expiry).", format="date"),
            "contact_email": _s(
                "Who sent the item in, for the editors to reply to. With it, the receipt "
                "and the editors' decision are emailed to your organisation's "
                "registered contact (never to this address).",
                format="email",
            ),
        },
    }
    item = {
        "type": "object",
        "properties": {
            **{k: v for k, v in new_item["properties"].items() if k != "event_date"},
            "id": {"type": "integer"},
            "status": _s("Moderation state.", enum=list(ITEM_STATUSES)),
            "body_html": _s("The sanitised HTML made from body."),
            "event_starts_at": _s("Local date and time of an event.", format="date-time"),
            "featured": {"type": "boolean"},
            "submitted_at": _s("", format="date-time"),
            "decided_at": _s("", format="date-time"),
            "decision_reason": _s("The editor's reason when rejected."),
        },
    }
    error = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": _s("The request field at fault, when there is one."),
                },
            }
        },
    }

    def err(description: str) -> dict:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    def ok(description: str) -> dict:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "End Racism This Generation partner API",
            "version": "1",
            "description": "Partners submit items for the monthly digest and follow their moderation.",
        },
        "servers": [{"url": f"{base_url}/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/items": {
                "post": {
                    "summary": "Submit an item",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Retrying with the same key returns the first result "
                            "instead of creating a second item.",
                            "schema": {"type": "string", "maxLength": 200},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}},
                    },
                    "responses": {
                        "201": ok("Created (submitted, or approved for trusted partners)."),
                        "200": ok("A replay of an earlier request with the same Idempotency-Key."),
                        "400": err("Malformed request."),
                        "401": err("Missing, unknown or revoked token."),
                        "409": err("Idempotency-Key reused with a different body."),
                        "413": err("Request too large."),
                        "422": err("A field is invalid; see error.field."),
                        "429": err(
                            "Too many items from this partner this hour; nothing was stored. "
                            "The Retry-After header says in how many seconds to try again."
                        ),
                    },
                }
            },
            "/items/{id}": {
                "get": {
                    "summary": "One of your items, with its moderation state",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "responses": {
                        "200": ok("The item."),
                        "401": err("Missing, unknown or revoked token."),
                        "404": err("No such item of yours."),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"NewItem": new_item, "Item": item, "Error": error},
        },
    }
