"""The partner API: bearer tokens, validation with field names, idempotency, OpenAPI."""

from __future__ import annotations

from sqlalchemy import func, select

from mailer.content.models import ApiToken, Item
from mailer.content.partners import issue_api_token, revoke_api_token
from tests.factories import make_partner

ITEM = {
    "kind": "resource",
    "title": "Race equality audit tool",
    "summary": "A practical tool to audit your practice.",
    "link": "https://example.org/audit",
    "topics": ["heart-health"],
    "body": "Use it **today**. <script>steal()</script>",
    "contact_email": "editor@partner.example.org",
}


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _items(session):
    session.expire_all()
    return session.scalar(select(func.count(Item.id)))


def test_create_then_read_an_item(client, rt, session, transport, queue):
    _, _, token = make_partner(rt)
    resp = client.post("/api/v1/items", json=ITEM, headers=_auth(token))
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["status"] == "submitted" and body["topics"] == ["heart-health"]
    assert "<script" not in body["body_html"] and "<strong>today</strong>" in body["body_html"]
    assert resp.headers["Location"] == f"/api/v1/items/{body['id']}"
    got = client.get(f"/api/v1/items/{body['id']}", headers=_auth(token))
    assert got.status_code == 200 and got.json["title"] == ITEM["title"]
    queue()  # the receipt goes to the registered contact, not the body's contact_email
    assert [m.recipient for m in transport.messages] == ["office@partner.example.org"]


def test_errors_are_json_and_name_the_field(client, rt, session):
    _, _, token = make_partner(rt)
    cases = [
        ({**ITEM, "link": "javascript:alert(document.cookie)"}, 422, "link"),
        ({**ITEM, "topics": ["no-such-topic"]}, 422, "topics"),
        ({**ITEM, "topics": "heart-health"}, 422, "topics"),
        ({**ITEM, "title": 42}, 422, "title"),
        ({**ITEM, "summary": "s" * 601}, 422, "summary"),
        ({**ITEM, "colour": "red"}, 422, "colour"),
        ({k: v for k, v in ITEM.items() if k != "link"}, 422, "link"),
        ({**ITEM, "kind": "event"}, 422, "event_date"),
        ({**ITEM, "image_url": "https://example.org/x.png"}, 422, "image_alt"),
        ([1, 2], 422, "request"),
    ]
    for payload, status, field in cases:
        resp = client.post("/api/v1/items", json=payload, headers=_auth(token))
        assert resp.status_code == status, (payload, resp.json)
        assert resp.json["error"]["field"] == field, resp.json
        assert resp.json["error"]["message"]
    resp = client.post(
        "/api/v1/items", data=b"\xff\xfe{not json", headers={**_auth(token), "Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json["error"]["field"] == "request"
    resp = client.post(
        "/api/v1/items", data=b"{" + b" " * 300_000 + b"}", headers={**_auth(token), "Content-Type": "application/json"}
    )
    assert resp.status_code == 413 and resp.is_json
    assert _items(session) == 0


def test_tokens_missing_wrong_revoked_or_another_partners(client, rt, session):
    pid, secret, token = make_partner(rt)
    _, _, other = make_partner(rt, "afiya-trust")
    for headers in ({}, _auth("ertg_wrong"), {"Authorization": f"Basic {token}"}, _auth("")):
        resp = client.post("/api/v1/items", json=ITEM, headers=headers)
        assert resp.status_code == 401 and "Bearer" in resp.headers["WWW-Authenticate"]
    item_id = client.post("/api/v1/items", json=ITEM, headers=_auth(token)).json["id"]
    assert client.get(f"/api/v1/items/{item_id}", headers=_auth(other)).status_code == 404
    with rt.db.transaction() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.partner_id == pid))
        assert row.last_used_at is not None
        revoke_api_token(s, row.id)
        from mailer.content.models import Partner

        _, fresh = issue_api_token(s, s.get(Partner, pid))
    assert client.post("/api/v1/items", json=ITEM, headers=_auth(token)).status_code == 401
    assert client.get(f"/api/v1/items/{item_id}", headers=_auth(token)).status_code == 401
    assert client.get(f"/api/v1/items/{item_id}", headers=_auth(fresh)).status_code == 200
    # revoking the token left the submission link alone
    assert client.get(f"/submit/{secret}").status_code == 200
    assert _items(session) == 1


def test_idempotency_key_replays_and_refuses_a_different_body(client, rt, session, transport, queue):
    _, _, token = make_partner(rt)
    headers = {**_auth(token), "Idempotency-Key": "batch-2026-11-item-7"}
    first = client.post("/api/v1/items", json=ITEM, headers=headers)
    again = client.post("/api/v1/items", json=ITEM, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.headers["Idempotent-Replayed"] == "true"
    clash = client.post("/api/v1/items", json={**ITEM, "title": "Something else"}, headers=headers)
    assert clash.status_code == 409 and clash.json["error"]["field"] == "Idempotency-Key"
    bad = client.post("/api/v1/items", json=ITEM, headers={**_auth(token), "Idempotency-Key": "a\u00e9b"})
    assert bad.status_code == 400
    assert _items(session) == 1
    queue()
    assert len(transport.messages) == 1  # one receipt, not one per retry


def test_openapi_document_describes_the_endpoints(client, rt):
    make_partner(rt)
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/items", "/items/{id}"}
    new = doc["components"]["schemas"]["NewItem"]
    assert new["properties"]["summary"]["maxLength"] == 600
    assert new["properties"]["topics"]["items"]["enum"] == ["sexual-health", "heart-health", "mental-health"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_terminal_escape_sequences_are_stripped_at_intake(client, rt, session):
    """Summary and body lose whole escape sequences (no "[2J" left behind); a title holding
    a control character is refused with its field named."""
    _, _, token = make_partner(rt)
    payload = {
        **ITEM,
        "summary": "Audit \x1b[2J\x1b[1;31mnow\x1b[0m\x07 please.",
        "body": "Read \x1b]8;;https://evil.example/\x1b\\this\x1b]8;;\x1b\\ first.\r\nThanks\x9b2J",
    }
    resp = client.post("/api/v1/items", json=payload, headers=_auth(token))
    assert resp.status_code == 201, resp.json
    session.expire_all()
    item = session.get(Item, resp.json["id"])
    assert item.summary == "Audit now please."
    assert item.body_markdown == "Read this first.\nThanks"
    resp = client.post("/api/v1/items", json={**ITEM, "title": "Tool\x1b]0;pwned\x07"}, headers=_auth(token))
    assert resp.status_code == 422 and resp.json["error"]["field"] == "title"


def test_deeply_nested_json_is_a_clear_400_not_a_500(client, rt, session):
    """Before any token is checked, the body is parsed: nesting that would exhaust the
    parser's recursion is refused with a JSON error, for strangers and partners alike."""
    _, _, token = make_partner(rt)
    for depth in (100_000, 30):
        body = b'{"topics": ' + b"[" * depth + b"]" * depth + b"}"
        for headers in ({}, _auth(token)):
            resp = client.post("/api/v1/items", data=body, headers={**headers, "Content-Type": "application/json"})
            assert resp.status_code == 400, (depth, resp.status_code)
            assert resp.is_json and resp.json["error"]["field"] == "request"
            assert "nested" in resp.json["error"]["message"]
    assert _items(session) == 0


def test_api_submissions_are_limited_per_partner_and_receipts_go_to_the_registered_contact(
    rt, settings, transport, session, queue
):
    import dataclasses

    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, partner_submissions_per_hour=2), transport)
    client = app.test_client()
    _, _, token = make_partner(rt)
    posts = [
        client.post(
            "/api/v1/items",
            json={**ITEM, "title": f"Item {n}", "contact_email": f"victim{n}@elsewhere.example"},
            headers={**_auth(token), "Idempotency-Key": f"k{n}"},
        )
        for n in range(3)
    ]
    assert [p.status_code for p in posts] == [201, 201, 429]
    limited = posts[2]
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    assert limited.json["error"]["code"] == "rate_limited" and "Nothing was stored" in limited.json["error"]["message"]
    # A replay of an accepted request is not a new submission, so it is not refused.
    replay = client.post(
        "/api/v1/items",
        json={**ITEM, "title": "Item 0", "contact_email": "victim0@elsewhere.example"},
        headers={**_auth(token), "Idempotency-Key": "k0"},
    )
    assert replay.status_code == 200 and replay.json["id"] == posts[0].json["id"]
    assert _items(session) == 2
    queue()
    assert [m.recipient for m in transport.messages] == ["office@partner.example.org"] * 2
    assert "429" in client.get("/api/v1/openapi.json").json["paths"]["/items"]["post"]["responses"]
