"""Staff accounts on the web (admins): change a role, remove two-factor; each audited.
(Creating, resetting and disabling are in test_console_access.py.)"""

from __future__ import annotations

import pytest

from mailer.staff import audit
from mailer.staff.accounts import find_user
from tests.conftest import csrf_token
from tests.mailer.web.console.test_access import clock, log_in, post_code, post_login, staff  # noqa: F401  (fixtures)


def test_an_admin_changes_a_role_which_ends_that_persons_sessions(app, staff, clock, session):  # noqa: F811
    admin, viewer = app.test_client(), app.test_client()
    log_in(admin, staff["admin"], clock)
    log_in(viewer, staff["viewer"], clock)
    token = csrf_token(admin.get("/admin/staff").text)
    page = admin.get("/admin/staff").text
    assert f'<label for="role-{staff["viewer"].id}" class="inline">Role of viewer</label>' in page
    r = admin.post(f"/admin/staff/{staff['viewer'].id}/role", data={"csrf_token": token, "role": "moderator"})
    assert r.status_code == 302
    session.expire_all()
    assert find_user(session, "viewer").role == "moderator"
    assert viewer.get("/admin/").status_code == 302  # logged out: log in again as a moderator
    [entry] = audit.search(session, action="staff.role").entries
    assert (entry.actor, entry.before["role"], entry.after["role"]) == ("admin", "viewer", "moderator")
    # refused: an unknown role, the admin's own role
    assert (
        admin.post(f"/admin/staff/{staff['viewer'].id}/role", data={"csrf_token": token, "role": "god"}).status_code
        == 400
    )
    r = admin.post(f"/admin/staff/{staff['admin'].id}/role", data={"csrf_token": token, "role": "viewer"})
    assert r.status_code == 400 and "cannot change your own role" in r.text
    session.expire_all()
    assert find_user(session, "admin").role == "admin" and audit.search(session, action="staff.role").total == 1


def test_the_last_admin_cannot_be_demoted(session):
    from mailer.staff.accounts import change_role, create_user
    from mailer.validation import InvalidInput

    root = create_user(session, "root", "admin", "correct horse battery", actor="test")
    other = create_user(session, "other", "editor", "correct horse battery", actor="test")
    with pytest.raises(InvalidInput, match="last active admin"):
        change_role(session, root, "editor", actor=other)
    assert root.role == "admin"


def test_an_admin_removes_someones_two_factor_without_touching_their_password(app, staff, clock, session):  # noqa: F811
    admin = app.test_client()
    log_in(admin, staff["admin"], clock)
    token = csrf_token(admin.get("/admin/staff").text)
    r = admin.post(f"/admin/staff/{staff['editor'].id}/reset-2fa", data={"csrf_token": token})
    assert r.status_code == 302
    session.expire_all()
    editor = find_user(session, "editor")
    assert editor.totp_secret is None and editor.recovery_codes == []
    # the password still works; the editor must enrol again before anything else
    client = app.test_client()
    assert post_login(client, "editor").headers["Location"] == "/admin/two-factor"
    [entry] = audit.search(session, action="staff.reset_2fa").entries
    assert entry.before["two_factor"] is True and entry.after["two_factor"] is False
    again = admin.post(f"/admin/staff/{staff['editor'].id}/reset-2fa", data={"csrf_token": token})
    assert again.status_code == 400 and "no two-factor" in again.text


def test_staff_changes_are_refused_to_an_editor(app, staff, clock, session):  # noqa: F811
    editor = app.test_client()
    log_in(editor, staff["editor"], clock)
    token = csrf_token(editor.get("/admin/").text)
    for path in (f"/admin/staff/{staff['viewer'].id}/role", f"/admin/staff/{staff['admin'].id}/reset-2fa"):
        assert editor.post(path, data={"csrf_token": token, "role": "admin"}).status_code == 403
    session.expire_all()
    assert find_user(session, "viewer").role == "viewer" and find_user(session, "admin").totp_secret is not None
