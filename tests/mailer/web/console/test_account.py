"""A person's own account page: change their password (current one required, throttled,
audited; other sessions end)."""

from __future__ import annotations

import pytest

from mailer.staff import audit
from mailer.staff import login as staff_login
from mailer.staff.permissions import ROLES
from tests.conftest import csrf_token
from tests.mailer.web.console.test_access import PASSWORD, clock, log_in, post_login, staff  # noqa: F401  (fixtures)

NEW = "a much longer new passphrase"


def change(client, current, new=NEW, again=None):
    token = csrf_token(client.get("/admin/account").text)
    return client.post(
        "/admin/account", data={"csrf_token": token, "current": current, "new": new, "again": again or new}
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_role_opens_its_account_page(app, staff, clock, role):  # noqa: F811
    client = app.test_client()
    log_in(client, staff[role], clock)
    page = client.get("/admin/account")
    assert page.status_code == 200 and f"You are <strong>{role}</strong>" in page.text
    assert 'href="/admin/account"' in client.get("/admin/").text
    assert app.test_client().get("/admin/account").status_code == 302  # logged out


def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(app, staff, clock, session):  # noqa: F811
    here, elsewhere = app.test_client(), app.test_client()
    log_in(here, staff["viewer"], clock)
    log_in(elsewhere, staff["viewer"], clock)
    r = change(here, "not my password!")
    assert r.status_code == 400 and "not your current password" in r.text
    r = change(here, PASSWORD, again="something else entirely")
    assert r.status_code == 400 and "The two new passwords differ." in r.text
    r = change(here, PASSWORD, new="short")
    assert r.status_code == 400 and "at least 12 characters" in r.text
    r = change(here, PASSWORD)
    assert r.status_code == 200 and "Your password is changed" in r.text
    assert here.get("/admin/").status_code == 200  # this browser carries on
    assert elsewhere.get("/admin/").status_code == 302  # every other session ended
    assert post_login(app.test_client(), "viewer", PASSWORD).status_code == 401
    assert post_login(app.test_client(), "viewer", NEW).status_code == 302
    session.expire_all()
    trail = [(e.action, (e.after or {}).get("step")) for e in audit.search(session, actor="viewer").entries[::-1]]
    assert ("login.failed", "change_password") in trail and ("staff.change_password", None) in trail
    assert "argon2" not in str([e.after for e in audit.search(session).entries])


def test_guessing_the_current_password_is_throttled(app, staff, clock):  # noqa: F811
    client = app.test_client()
    log_in(client, staff["viewer"], clock)
    # logging in counted once against the account already
    for _ in range(staff_login.PER_ACCOUNT - 1):
        assert change(client, "wrong guess!!").status_code == 400
    r = change(client, PASSWORD)
    assert r.status_code == 429 and "Too many attempts" in r.text
