"""Partners and topics in the console: who may use them, creating and editing partners,
rotating and revoking submission links and API tokens (shown once, never audited), feed
state, and topics with their order and descriptions; an audit entry for every change."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from mailer.content.models import Partner, Topic
from mailer.content.partners import partner_for_api_token, partner_for_secret
from mailer.staff import audit
from mailer.staff.permissions import PARTNERS_MANAGE, ROLE_PERMISSIONS, ROLES
from tests.conftest import csrf_token
from tests.factories import make_partner
from tests.mailer.web.console.test_access import clock, log_in, staff  # noqa: F401  (fixtures shared with the console tests)


def logged_in(app, user, clk):
    c = app.test_client()
    log_in(c, user, clk)
    return c


def post(client, url, **data):
    token = csrf_token(client.get("/admin/").text)
    return client.post(url, data={"csrf_token": token, **data})


def changes(session, prefix):
    session.expire_all()
    return audit.search(session, action=prefix, per_page=500).entries[::-1]


@pytest.fixture
def naz(rt):
    pid, secret, token = make_partner(rt)
    return pid


NEW = {
    "slug": "afiya-trust",
    "name": "Afiya Trust",
    "website": "https://www.afiya-trust.org",
    "description": "Health and social care equality for racialised communities.",
    "contact_email": "hello@afiya.example.org",
    "feed_url": "",
    "logo_url": "",
    "active": "y",
}


def test_logged_out_partners_and_topics_go_to_login_and_change_nothing(app, client, naz, session):
    for path in ("/admin/partners", f"/admin/partners/{naz}", "/admin/topics"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), path
    token = csrf_token(client.get("/admin/login").text)
    for path in ("/admin/partners", f"/admin/partners/{naz}/link", f"/admin/partners/{naz}/tokens", "/admin/topics"):
        assert client.post(path, data={"csrf_token": token, **NEW}).status_code == 302
    assert session.scalar(select(Partner).where(Partner.slug == "afiya-trust")) is None
    assert changes(session, "partner") == []


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_manage_partners_exactly_as_its_permissions_say(app, staff, clock, naz, session, role):  # noqa: F811
    user = staff[role]
    if role in ("moderator", "viewer"):
        user.totp_secret = None
    c = logged_in(app, user, clock)
    allowed = PARTNERS_MANAGE in ROLE_PERMISSIONS[role]
    for path in ("/admin/partners", f"/admin/partners/{naz}", "/admin/topics"):
        assert c.get(path).status_code == (200 if allowed else 403), (role, path)
    assert ('href="/admin/partners"' in c.get("/admin/").text) == allowed
    r = post(c, f"/admin/partners/{naz}/link")
    assert r.status_code == (200 if allowed else 403)
    assert bool(changes(session, "partner.link_rotate")) == allowed


def test_create_and_edit_a_partner_with_before_and_after_in_the_audit_log(app, staff, clock, session):  # noqa: F811
    c = logged_in(app, staff["admin"], clock)
    r = post(c, "/admin/partners", **{**NEW, "slug": "Afiya Trust"})
    assert r.status_code == 400 and "lower-case letters" in r.text
    r = post(c, "/admin/partners", **{**NEW, "website": "javascript:alert(1)"})
    assert r.status_code == 400 and "must be a full web address" in r.text
    assert session.scalar(select(Partner)) is None
    r = post(c, "/admin/partners", **NEW)
    assert r.status_code == 302
    p = session.scalar(select(Partner))
    assert (p.name, p.contact_email, p.active, p.trusted) == ("Afiya Trust", "hello@afiya.example.org", True, False)
    r = post(c, f"/admin/partners/{p.id}", **{**NEW, "name": "The Afiya Trust", "trusted": "y", "active": "y"})
    assert r.status_code == 302
    session.expire_all()
    assert session.get(Partner, p.id).trusted
    create, edit = changes(session, "partner")
    assert create.action == "partner.create" and create.after["slug"] == "afiya-trust"
    assert (edit.before, edit.after) == (
        {"name": "Afiya Trust", "trusted": False},
        {"name": "The Afiya Trust", "trusted": True},
    )
    assert "The Afiya Trust" in c.get("/admin/partners").text


def test_a_new_submission_link_is_shown_once_works_and_ends_the_old_one(app, rt, staff, clock, session):  # noqa: F811
    pid, old_secret, _ = make_partner(rt)
    c = logged_in(app, staff["admin"], clock)
    r = post(c, f"/admin/partners/{pid}/link")
    link = re.search(r'<code class="secret">(https://digest\.example\.org/submit/([^<]+))</code>', r.text)
    assert r.status_code == 200 and link and "shown only this once" in r.text
    secret = link.group(2)
    assert partner_for_secret(session, secret).id == pid and partner_for_secret(session, old_secret) is None
    assert secret not in c.get(f"/admin/partners/{pid}").text  # never again
    assert app.test_client().get(f"/submit/{secret}").status_code == 200
    post(c, f"/admin/partners/{pid}/link/revoke")
    session.expire_all()
    assert partner_for_secret(session, secret) is None
    assert app.test_client().get(f"/submit/{secret}").status_code == 404
    entries = [e for e in changes(session, "partner") if e.action.startswith("partner.link")]
    assert [e.action for e in entries] == ["partner.link_rotate", "partner.link_revoke"]
    assert secret not in json.dumps([e.after for e in entries])


def test_api_tokens_are_issued_once_listed_by_prefix_and_revoked(app, rt, staff, clock, session):  # noqa: F811
    pid, _, first = make_partner(rt)
    c = logged_in(app, staff["admin"], clock)
    r = post(c, f"/admin/partners/{pid}/tokens", label="Their CMS")
    token = re.search(r'The new API token is <code class="secret">([^<]+)</code>', r.text).group(1)
    assert partner_for_api_token(session, token).id == pid
    page = c.get(f"/admin/partners/{pid}").text
    assert token not in page and f"<code>{token[:12]}…</code>" in page and "Their CMS" in page
    session.commit()
    (entry,) = changes(session, "partner.token_issue")
    row_id = entry.after["token_id"]
    assert token not in json.dumps(entry.after) and entry.after["prefix"] == token[:12]
    r = post(c, f"/admin/partners/{pid}/tokens/{row_id}/revoke")
    assert r.status_code == 302
    session.expire_all()
    assert partner_for_api_token(session, token) is None and partner_for_api_token(session, first).id == pid
    other, _, _ = make_partner(rt, "diverse-minds")
    assert post(c, f"/admin/partners/{other}/tokens/{row_id}/revoke").status_code == 404  # not theirs
    assert [e.action for e in changes(session, "partner") if e.action.startswith("partner.token")] == [
        "partner.token_issue",
        "partner.token_revoke",
    ]


def test_feed_state_and_errors_are_shown_as_text(app, rt, staff, clock, session):  # noqa: F811
    pid, _, _ = make_partner(rt, feed_url="https://feeds.example.org/news.xml")
    p = session.get(Partner, pid)
    p.feed_error = "HTTP 500 <b>Internal</b>"
    session.commit()
    c = logged_in(app, staff["admin"], clock)
    for path in ("/admin/partners", f"/admin/partners/{pid}"):
        html = c.get(path).text
        assert "HTTP 500 &lt;b&gt;Internal&lt;/b&gt;" in html and "<b>Internal" not in html


def test_topics_are_added_described_and_reordered_with_an_audit_entry_each(app, rt, staff, clock, session):  # noqa: F811
    make_partner(rt)  # three topics: sexual-health, heart-health, mental-health
    c = logged_in(app, staff["admin"], clock)
    r = post(c, "/admin/topics", **{"new-slug": "policy", "new-name": "Heart health"})
    assert r.status_code == 400 and "already a topic called" in r.text
    post(c, "/admin/topics", **{"new-slug": "policy", "new-name": "Policy", "new-description": "Campaigning."})
    heart = session.scalar(select(Topic).where(Topic.slug == "heart-health"))
    post(
        c,
        f"/admin/topics/{heart.id}",
        **{f"t{heart.id}-name": "Heart health", f"t{heart.id}-description": "Blood pressure, screening."},
    )
    post(c, f"/admin/topics/{heart.id}/move", direction="up")
    session.expire_all()
    order = [t.slug for t in session.scalars(select(Topic).order_by(Topic.position))]
    assert order == ["heart-health", "sexual-health", "mental-health", "policy"]
    assert session.get(Topic, heart.id).description == "Blood pressure, screening."
    page = c.get("/admin/topics").text
    assert page.index("Move Heart health down") < page.index("Move Sexual health up")
    acts = [(e.action, e.after) for e in changes(session, "topic")]
    assert [a for a, _ in acts] == ["topic.create", "topic.edit", "topic.move"]
    assert acts[2][1] == {"order": order}
