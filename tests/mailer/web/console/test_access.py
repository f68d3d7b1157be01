"""The editors' console under /admin: who may see which page, logging in with two
factors, throttling, expiring sessions, the audit trail of staff actions, and the
security headers of console and public pages."""

from __future__ import annotations

import dataclasses
import re
import time

import pyotp
import pytest
from sqlalchemy import select

from mailer.staff import audit, twofactor
from mailer.staff import login as staff_login
from mailer.staff.accounts import create_user, find_user
from mailer.staff.models import AuditEntry
from mailer.staff.permissions import AUDIT_VIEW, DASHBOARD, GROUPS_VIEW, ROLE_PERMISSIONS, ROLES, STAFF_MANAGE
from tests.conftest import csrf_token

PASSWORD = "correct horse battery"

# Every page of the console a person opens with GET, and the permission it needs.
PAGES = {"/admin/": DASHBOARD, "/admin/audit": AUDIT_VIEW, "/admin/staff": STAFF_MANAGE, "/admin/groups": GROUPS_VIEW}


@pytest.fixture
def clock(app):
    """The console's clock, starting 5 s into a TOTP step; tests move ``clock.t``."""

    class Clock:
        t = (int(time.time()) // 30) * 30 + 5.0

        def __call__(self):
            return self.t

    c = Clock()
    app.extensions["console.clock"] = c
    return c


@pytest.fixture
def staff(session):
    """One account per role; admin and editor have two-factor set up (their secret is
    kept on the object as ``secret``, in clear; the database holds it sealed), the others
    have not."""
    users = {}
    for role in ROLES:
        user = create_user(session, role, role, PASSWORD, actor="test")
        if role in ("admin", "editor"):
            user.secret = pyotp.random_base32()
            twofactor.set_secret(session, user, user.secret)
        users[role] = user
    session.commit()
    return users


def code(user, t):
    return pyotp.TOTP(user.secret).at(t)


def post_login(client, username, password=PASSWORD, next_=None):
    page = client.get("/admin/login")
    return client.post(
        "/admin/login" + (f"?next={next_}" if next_ else ""),
        data={"csrf_token": csrf_token(page.text), "username": username, "password": password},
    )


def post_code(client, value):
    page = client.get("/admin/login/code")
    return client.post("/admin/login/code", data={"csrf_token": csrf_token(page.text), "code": value})


def log_in(client, user, clock):
    """Log ``user`` in through the pages; returns the last response."""
    r = post_login(client, user.username)
    if user.totp_secret:
        assert r.status_code == 302 and r.headers["Location"].endswith("/admin/login/code")
        clock.t += 30  # a fresh step: no code is used twice in these tests
        r = post_code(client, code(user, clock.t))
    assert r.status_code == 302, r.text
    return r


def actions(session, **filters):
    session.expire_all()
    return [(e.actor, e.action) for e in audit.search(session, **filters).entries[::-1]]


# --- who may open what ------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/admin/two-factor"])
def test_a_logged_out_visitor_is_sent_to_the_login_page(client, path):
    r = client.get(path)
    assert r.status_code == 302
    assert r.headers["Location"] == f"/admin/login?next={path}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_exactly_the_pages_its_permissions_allow(app, staff, clock, role):
    client = app.test_client()
    user = staff[role]
    if role in ("moderator", "viewer"):
        user.totp_secret = None  # roles that cannot send may log in without two-factor
    log_in(client, user, clock)
    for path, permission in PAGES.items():
        r = client.get(path)
        allowed = permission in ROLE_PERMISSIONS[role]
        assert r.status_code == (200 if allowed else 403), (role, path)
        if not allowed:
            assert "Your role does not allow this page" in r.text
    # the navigation offers only what the role may open
    nav = client.get("/admin/").text
    assert ('href="/admin/audit"' in nav) == (AUDIT_VIEW in ROLE_PERMISSIONS[role])


def test_staff_actions_are_refused_to_roles_without_the_permission(app, staff, clock, session):
    client = app.test_client()
    log_in(client, staff["editor"], clock)
    token = csrf_token(client.get("/admin/").text)
    target = staff["viewer"]
    for url in ("/admin/staff", f"/admin/staff/{target.id}/disable", f"/admin/staff/{target.id}/reset"):
        r = client.post(url, data={"csrf_token": token, "username": "mallory", "role": "admin"})
        assert r.status_code == 403, url
    session.expire_all()
    assert find_user(session, "mallory") is None and not find_user(session, "viewer").disabled
    # logged out, the same posts go to the login page and change nothing
    anon = app.test_client()
    token = csrf_token(anon.get("/admin/login").text)
    r = anon.post("/admin/staff", data={"csrf_token": token, "username": "mallory", "role": "admin"})
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login")
    assert find_user(session, "mallory") is None


def test_every_console_view_checks_a_permission_or_is_a_login_step(app):
    unguarded = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console."):
            view = app.view_functions[rule.endpoint]
            if not (getattr(view, "console_permission", None) or getattr(view, "console_public", False)):
                unguarded.append(rule.rule)
    public = sorted(
        r.rule
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("console.") and getattr(app.view_functions[r.endpoint], "console_public", False)
    )
    assert unguarded == []
    assert public == ["/admin/login", "/admin/login/code", "/admin/logout"]


@pytest.mark.parametrize(
    ("method", "path", "writes"),
    [
        ("GET", "/admin/", False),
        ("HEAD", "/admin/partners", False),
        ("POST", "/admin/login", True),
        ("GET", "/admin/editions/2026-01-05/recipients", True),  # a dry run: writes, rolls back
    ],
)
def test_a_request_that_may_write_gets_a_session_that_locks_first(app, method, path, writes):
    """On SQLite a request's session that will write takes the write lock at its first
    statement (mailer.db): a write after its first read could otherwise fail at once with
    "database is locked" when a worker committed in between. Reading pages take no lock."""
    from mailer.web.console import access

    with app.test_request_context(path, method=method):
        s = access.db()
        try:
            assert bool(s.execution_options.get("mailer_write")) == writes
        finally:
            access._close_db(None)


# --- logging in -------------------------------------------------------------------------


def test_log_in_with_password_then_code_is_audited_with_the_client_address(app, client, staff, clock, session):
    r = post_login(client, "Editor", next_="/admin/audit")  # any case of the name
    assert r.headers["Location"].endswith("/admin/login/code")
    assert client.get("/admin/").status_code == 302  # half logged in is not logged in
    clock.t += 30
    r = post_code(client, code(staff["editor"], clock.t))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/audit"  # back where they were going
    assert client.get("/admin/").status_code == 200
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "login")).one()
    assert (entry.actor, entry.ip, entry.object_id) == ("editor", "127.0.0.1", str(staff["editor"].id))


def test_wrong_password_unknown_name_and_disabled_account_get_the_same_answer(client, staff, session):
    staff["viewer"].disabled = True
    session.commit()
    answers = [
        post_login(client, name, password)
        for name, password in (("editor", "not the password"), ("nobody", PASSWORD), ("viewer", PASSWORD))
    ]
    assert {r.status_code for r in answers} == {401}
    assert {staff_login.FAILED in r.text for r in answers} == {True}
    assert client.get("/admin/").status_code == 302
    assert actions(session, action="login") == [
        ("editor", "login.failed"),
        ("nobody", "login.failed"),
        ("viewer", "login.failed"),
    ]


def test_a_login_form_without_its_csrf_token_is_refused(client, staff, session):
    r = client.post("/admin/login", data={"username": "viewer", "password": PASSWORD})
    assert r.status_code == 400 and "This form expired" in r.text
    assert actions(session, action="login") == [] and client.get("/admin/").status_code == 302


def test_next_never_leaves_the_console(app, staff):
    for outside in ("https://evil.example/admin", "//evil.example/admin", "/admin\\@evil.example"):
        r = post_login(app.test_client(), "viewer", next_=outside)
        assert r.headers["Location"] == "/admin/", outside


def test_logins_are_throttled_per_account_even_with_the_right_password(client, staff, session):
    for _ in range(staff_login.PER_ACCOUNT):
        assert post_login(client, "viewer", "wrong password!").status_code == 401
    r = post_login(client, "viewer")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "Too many attempts" in r.text
    assert client.get("/admin/").status_code == 302
    # refused before the password was checked: no more failures recorded than attempts made
    assert len(actions(session, action="login.failed")) == staff_login.PER_ACCOUNT


def test_logins_are_throttled_per_client_across_account_names(client, staff):
    for i in range(staff_login.PER_CLIENT):
        assert post_login(client, f"guess{i}", "wrong password!").status_code == 401
    r = post_login(client, "moderator")
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_a_code_is_never_accepted_twice(app, staff, clock, session):
    editor = staff["editor"]
    first = app.test_client()
    post_login(first, "editor")
    used = code(editor, clock.t)
    assert post_code(first, used).status_code == 302
    # someone who saw the code (and knows the password) tries it in the same half-minute
    second = app.test_client()
    post_login(second, "editor")
    clock.t += 10
    r = post_code(second, used)
    assert r.status_code == 401 and "already used" in r.text
    assert second.get("/admin/").status_code == 302
    clock.t += 30
    assert post_code(second, code(editor, clock.t)).status_code == 302  # the next code works
    assert ("editor", "login.failed") in actions(session, action="login")


def test_a_recovery_code_logs_in_once(app, staff, session):
    editor = staff["editor"]
    codes = twofactor.issue_recovery_codes(editor)
    session.commit()
    client = app.test_client()
    post_login(client, "editor")
    assert post_code(client, codes[0]).status_code == 302
    assert client.get("/admin/").status_code == 200
    again = app.test_client()
    post_login(again, "editor")
    assert post_code(again, codes[0]).status_code == 401
    assert actions(session, action="login.recovery_code") == [("editor", "login.recovery_code")]
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "login.recovery_code")).one()
    assert entry.after == {"recovery_codes_left": 9}


def test_the_code_step_expires_after_five_minutes(client, staff, clock):
    post_login(client, "editor")
    clock.t += 301
    r = client.get("/admin/login/code")
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login")


# --- enrolling two-factor ---------------------------------------------------------------


def test_an_editor_without_two_factor_must_enrol_and_sees_recovery_codes_once(app, client, staff, clock, session):
    staff["editor"].totp_secret = None
    session.commit()
    r = post_login(client, "editor")
    assert r.headers["Location"] == "/admin/two-factor"
    assert client.get("/admin/").headers["Location"] == "/admin/two-factor"  # nothing else first
    page = client.get("/admin/two-factor")
    assert page.status_code == 200 and "<svg" in page.text and "<script" not in page.text
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text).group(1)
    token = csrf_token(page.text)
    bad = client.post("/admin/two-factor", data={"csrf_token": token, "code": "000000"})
    assert bad.status_code == 400 and "not right" in bad.text
    r = client.post("/admin/two-factor", data={"csrf_token": token, "code": pyotp.TOTP(secret).at(clock.t)})
    assert r.status_code == 200
    codes = re.findall(r"<li><code>([A-Z0-9-]{19})</code></li>", r.text)
    assert len(codes) == 10
    assert client.get("/admin/").status_code == 200
    assert "already set up" in client.get("/admin/two-factor").text  # and the codes are not shown again
    session.expire_all()
    editor = find_user(session, "editor")
    assert twofactor.reveal(session, editor) == secret and secret not in editor.totp_secret  # stored sealed
    assert actions(session, action="staff.enrol_2fa") == [("editor", "staff.enrol_2fa")]


def test_a_viewer_may_use_the_console_without_two_factor(app, client, staff):
    r = post_login(client, "viewer")
    assert r.headers["Location"] == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200 and 'href="/admin/two-factor">set up two-factor' in page.text


# --- sessions ---------------------------------------------------------------------------


def test_a_session_ends_after_the_idle_timeout(app, client, staff, clock, settings):
    log_in(client, staff["viewer"], clock)
    clock.t += settings.console_idle_minutes * 60 - 5
    assert client.get("/admin/").status_code == 200
    clock.t += settings.console_idle_minutes * 60 + 1
    r = client.get("/admin/")
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    assert "Your session ended" in client.get(r.headers["Location"]).text
    assert client.get("/admin/").status_code == 302


def test_a_session_ends_after_its_lifetime_even_when_busy(app, client, staff, clock, settings):
    log_in(client, staff["viewer"], clock)
    for _ in range(settings.console_session_hours * 3):  # a request every 20 minutes
        clock.t += 20 * 60
        assert client.get("/admin/").status_code == 200
    clock.t += 20 * 60
    assert client.get("/admin/").status_code == 302


def test_the_session_cookie_is_secure_httponly_samesite_and_expires(client, staff):
    r = post_login(client, "viewer")
    cookie = r.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Expires="):
        assert flag in cookie


def test_logging_out_ends_the_session_and_is_audited(client, staff, clock, session):
    log_in(client, staff["viewer"], clock)
    token = csrf_token(client.get("/admin/").text)
    r = client.post("/admin/logout", data={"csrf_token": token})
    assert r.status_code == 302 and client.get("/admin/").status_code == 302
    assert actions(session)[-1] == ("viewer", "logout")


# --- staff accounts on the web ----------------------------------------------------------


def test_an_admin_creates_resets_and_disables_accounts_and_each_change_is_audited(app, staff, clock, session):
    admin = app.test_client()
    log_in(admin, staff["admin"], clock)
    token = csrf_token(admin.get("/admin/staff").text)
    r = admin.post("/admin/staff", data={"csrf_token": token, "username": "Noor", "role": "moderator"})
    assert r.status_code == 200
    password = re.search(
        r"The password for <strong>noor</strong> is <code class=\"secret\">([^<]+)</code>", r.text
    ).group(1)
    r = admin.post("/admin/staff", data={"csrf_token": token, "username": "noor", "role": "viewer"})
    assert r.status_code == 400 and "already exists" in r.text
    noor = app.test_client()
    assert post_login(noor, "noor", password).status_code == 302
    assert noor.get("/admin/").status_code == 200

    viewer = app.test_client()
    log_in(viewer, staff["viewer"], clock)
    r = admin.post(f"/admin/staff/{staff['viewer'].id}/reset", data={"csrf_token": token, "reset_2fa": "y"})
    new_password = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)
    assert viewer.get("/admin/").status_code == 302  # the reset ended the viewer's session
    assert post_login(viewer, "viewer", PASSWORD).status_code == 401
    assert post_login(viewer, "viewer", new_password).status_code == 302

    r = admin.post(f"/admin/staff/{staff['admin'].id}/disable", data={"csrf_token": token})
    assert r.status_code == 400 and "cannot disable your own account" in r.text
    admin.post(f"/admin/staff/{find_user(session, 'noor').id}/disable", data={"csrf_token": token})
    assert noor.get("/admin/").status_code == 302  # disabling ended Noor's session too
    assert post_login(noor, "noor", password).status_code == 401

    entries = [e for e in audit.search(session, actor="admin").entries[::-1] if e.action.startswith("staff.")]
    assert [e.action for e in entries] == ["staff.create", "staff.reset_password", "staff.disable"]
    assert all(e.ip == "127.0.0.1" for e in entries)
    assert entries[1].after["two_factor_reset"] is True and entries[2].after["disabled"] is True


# --- the audit log page -----------------------------------------------------------------


def test_the_audit_page_filters_pages_and_shows_hostile_names_as_text(app, client, staff, clock, session):
    post_login(app.test_client(), "<script>alert(1)</script>", "wrong password!")
    for i in range(60):
        audit.record(session, "cli:ops", "staff.create", ("staff_users", 1000 + i))
    session.commit()
    log_in(client, staff["admin"], clock)
    page = client.get("/admin/audit?actor=cli:ops")
    assert "60 entries; page 1 of 2." in page.text and page.text.count("<td>cli:ops</td>") == 50
    older = client.get("/admin/audit?actor=cli:ops&page=2")
    assert older.text.count("<td>cli:ops</td>") == 10 and "staff_users 1000" in older.text
    assert 'href="/admin/audit?page=2&amp;actor=cli:ops"' in page.text  # filters kept across pages
    one = client.get("/admin/audit?object_type=staff_users&object_id=1007")
    assert "1 entry;" in one.text
    failed = client.get("/admin/audit?action=login.failed")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in failed.text and "<script>alert" not in failed.text
    assert client.post("/admin/audit").status_code in (400, 405)  # nothing to write to


# --- headers ----------------------------------------------------------------------------


def _console_pages(app, staff, clock):
    client = app.test_client()
    log_in(client, staff["admin"], clock)
    pages = {p: client.get(p) for p in PAGES}
    pages["two-factor (enrolled)"] = client.get("/admin/two-factor")
    anon = app.test_client()
    pages["login"] = anon.get("/admin/login")
    pages["redirect"] = anon.get("/admin/")
    viewer = app.test_client()
    log_in(viewer, staff["viewer"], clock)
    pages["403"] = viewer.get("/admin/staff")
    return pages


def test_console_pages_carry_a_strict_policy_and_no_inline_script_or_style(app, staff, clock):
    for name, r in _console_pages(app, staff, clock).items():
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, name
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, name
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Referrer-Policy"] == "no-referrer", name
        assert r.headers["Strict-Transport-Security"].startswith("max-age="), name
        assert r.headers["Cache-Control"] == "no-store", name
        html = r.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), name  # no inline script
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.I), name  # no inline style or handlers


def test_public_pages_deny_framing_and_send_hsts_over_https(client):
    r = client.get("/")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert (
        "'unsafe-inline'" not in r.headers["Content-Security-Policy"].split("script-src")[-1]
        or "script-src" not in r.headers["Content-Security-Policy"]
    )
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Referrer-Policy"] == "no-referrer"


def test_no_hsts_when_base_url_is_plain_http(rt, settings, transport):
    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, base_url="http://127.0.0.1:5000"), transport)
    r = app.test_client().get("/admin/login")
    assert "Strict-Transport-Security" not in r.headers
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
