"""Staff of the editors' console (mailer.staff) and `mailer users`: roles, passwords, TOTP
without replay, recovery codes, login throttling, separation of duties, the audit log."""

from __future__ import annotations

import dataclasses
import getpass
import threading
from datetime import datetime, timedelta, timezone

import pyotp
import pytest
from sqlalchemy import select

from mailer.cli import main
from mailer.counters import MemoryCounters
from mailer.db import utcnow
from mailer.settings import ConfigError, PasswordHashing
from mailer.staff import audit, claims, login, passwords, twofactor
from mailer.staff import permissions as perms
from mailer.staff.accounts import create_user, disable_user, find_user, reset_password
from mailer.staff.approval import can_approve
from mailer.staff.models import AuditEntry, AuditLogIsAppendOnly, StaffUser
from mailer.staff.passwords import verify_password
from mailer.validation import InvalidInput
from tests.conftest import BOTH_DIALECTS, FAST_HASHING

PASSWORD = "correct horse battery"
T0 = 1_800_000_005.0  # 5 s into a 30-second TOTP step


def make(session, name="alice", role="editor", password=PASSWORD, actor="test"):
    user = create_user(session, name, role, password, actor=actor)
    session.commit()
    return user


# --- roles and permissions --------------------------------------------------------------


def test_each_role_has_exactly_the_permissions_the_issue_gives_it():
    assert perms.ROLE_PERMISSIONS["admin"] == perms.ALL_PERMISSIONS
    editor, moderator, viewer = (perms.ROLE_PERMISSIONS[r] for r in ("editor", "moderator", "viewer"))
    assert {perms.EDITIONS_EDIT, perms.EDITIONS_SEND, perms.SUBSCRIBERS_MANAGE, perms.ITEMS_MODERATE} <= editor
    assert {perms.GROUPS_VIEW, perms.GROUPS_MANAGE} <= editor  # editors create and run groups
    assert not {perms.STAFF_MANAGE, perms.AUDIT_VIEW, perms.SETTINGS_VIEW} & editor
    assert moderator == {
        perms.DASHBOARD,
        perms.ITEMS_MODERATE,  # partner items and held group posts
        perms.PARTNERS_MANAGE,
        perms.GROUPS_MODERATE,
        perms.GROUPS_VIEW,  # read the group screens, change nothing there
    }
    assert not perms.allows("moderator", perms.EDITIONS_SEND)
    assert viewer == {perms.DASHBOARD, perms.GROUPS_VIEW}
    assert not perms.allows("intruder", perms.DASHBOARD)  # an unknown role may do nothing
    with pytest.raises(KeyError):
        perms.allows("admin", "dashbaord.view")  # a misspelt permission never passes silently
    assert [r for r in perms.ROLES if perms.needs_two_factor(r)] == ["admin", "editor"]


# --- accounts and passwords -------------------------------------------------------------


def test_passwords_are_argon2id_hashes_and_only_the_right_one_matches(session):
    user = make(session)
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert verify_password(user.password_hash, PASSWORD)[0]
    assert not verify_password(user.password_hash, PASSWORD.upper())[0]
    assert not verify_password(None, PASSWORD)[0]  # no account: never a match


def test_hashing_is_cheaper_than_the_default_only_in_tests_and_the_default_is_argon2s(settings):
    assert PasswordHashing() == PasswordHashing(time_cost=3, memory_kib=65536, parallelism=4)  # RFC 9106 low-memory
    assert settings.password_hashing.cheaper_than(PasswordHashing())  # this suite's own cost
    for env in ("production", "development"):
        with pytest.raises(ConfigError, match="only in tests"):
            dataclasses.replace(settings, env=env)
    assert dataclasses.replace(settings, env="production", password_hashing=PasswordHashing()).env == "production"


def test_a_hash_made_at_another_cost_still_matches_and_is_replaced_at_the_next_login(session):
    stored = make(session).password_hash  # at the suite's cheap cost
    passwords.use_cost(PasswordHashing(time_cost=2, memory_kib=16, parallelism=1))
    try:
        attempt = login.check_password(session, "alice", PASSWORD, ip=None, when=utcnow())
        assert attempt.user is not None
        assert attempt.user.password_hash != stored and "t=2" in attempt.user.password_hash
        assert not login.check_password(session, "alice", "wrong password!", ip=None, when=utcnow()).user
    finally:
        passwords.use_cost(FAST_HASHING)


@pytest.mark.parametrize(
    "name, role, password, problem",
    [
        ("Alice", "editor", PASSWORD, "already exists"),  # names are case-folded
        ("bob", "superuser", PASSWORD, "role must be one of"),
        ("bob", "editor", "short", "at least 12 characters"),
        ("b<script>", "editor", PASSWORD, "A user name is"),
    ],
)
def test_bad_account_details_are_refused_and_change_nothing(session, name, role, password, problem):
    make(session)
    with pytest.raises(InvalidInput, match=problem):
        create_user(session, name, role, password, actor="test")
    session.rollback()
    assert [u.username for u in session.scalars(select(StaffUser))] == ["alice"]


# --- two-factor -------------------------------------------------------------------------


def test_a_totp_code_is_accepted_once_and_never_again():
    secret = pyotp.random_base32()
    user = StaffUser(username="alice", role="editor", totp_last_step=0)
    totp = pyotp.TOTP(secret)
    code = totp.at(T0)
    assert twofactor.accept_totp(user, code, T0, secret=secret)
    assert not twofactor.accept_totp(user, code, T0 + 1, secret=secret)  # replay in the same step
    assert not twofactor.accept_totp(user, code, T0 + 30, secret=secret)  # ... or the next (drift window)
    assert twofactor.accept_totp(user, totp.at(T0 + 30), T0 + 30, secret=secret)
    assert not twofactor.accept_totp(user, totp.at(T0), T0 + 30, secret=secret)  # an older step after a newer one


def test_two_logins_racing_with_one_code_cannot_both_get_in(rt, session):
    """The second request loaded the account before the first stored the step: the
    database, not the loaded object, decides."""
    user = make(session)
    secret = pyotp.random_base32()
    twofactor.set_secret(session, user, secret)
    session.commit()
    code = pyotp.TOTP(secret).at(T0)
    with rt.db.sessions() as first, rt.db.sessions() as second:
        a, b = first.get(StaffUser, user.id), second.get(StaffUser, user.id)
        assert b.totp_last_step == 0  # loaded before the first request commits
        assert twofactor.accept_totp(a, code, T0, session=first)
        first.commit()
        assert not twofactor.accept_totp(b, code, T0, session=second)
    session.expire_all()
    assert session.get(StaffUser, user.id).totp_last_step == T0 // 30


def test_totp_allows_one_step_of_clock_drift_and_no_more():
    secret = pyotp.random_base32()
    user = StaffUser(username="alice", role="editor", totp_last_step=0)
    totp = pyotp.TOTP(secret)
    assert not twofactor.accept_totp(user, totp.at(T0 - 60), T0, secret=secret)
    assert not twofactor.accept_totp(user, totp.at(T0 + 60), T0, secret=secret)
    assert not twofactor.accept_totp(user, "12345x", T0, secret=secret)
    assert twofactor.accept_totp(user, totp.at(T0 - 30), T0, secret=secret)  # the phone is a step behind


def test_the_totp_secret_is_stored_encrypted_and_survives_a_key_rotation(rt, session, settings):
    """A database dump does not hold the secret; after SECRET_KEY is rotated (the old key
    in SECRET_KEY_FALLBACKS) the same phone still works; without the old key it is refused
    with a clear error."""
    import dataclasses

    from mailer.db import Database
    from mailer.runtime import database_info

    user = make(session)
    secret = pyotp.random_base32()
    twofactor.set_secret(session, user, secret)
    session.commit()
    with rt.db.engine.connect() as conn:
        stored = conn.execute(select(StaffUser.totp_secret)).scalar()
    assert secret not in stored and stored.startswith("gAAAA")  # a Fernet token
    assert twofactor.reveal(session, user) == secret

    rotated = dataclasses.replace(settings, secret_key="a-new-key", secret_key_fallbacks=(settings.secret_key,))
    lost = dataclasses.replace(settings, secret_key="a-new-key", secret_key_fallbacks=())
    for s, works in ((rotated, True), (lost, False)):
        db = Database(settings.database_url, info=database_info(s))
        with db.sessions() as other:
            again = other.get(StaffUser, user.id)
            if works:
                assert twofactor.reveal(other, again) == secret
                assert twofactor.accept_totp(again, pyotp.TOTP(secret).at(T0), T0, session=other)
            else:
                with pytest.raises(twofactor.SealError, match="SECRET_KEY_FALLBACKS"):
                    twofactor.reveal(other, again)
        db.dispose()


def test_recovery_codes_are_stored_hashed_and_each_works_once(session):
    user = make(session)
    codes = twofactor.issue_recovery_codes(user)
    session.commit()
    assert len(codes) == len(set(codes)) == 10
    stored = [rc.code_hash for rc in user.recovery_codes]
    assert not any(c in h or c.replace("-", "") in h for c in codes for h in stored)
    typed = codes[3].lower().replace("-", " ")  # as people type it
    assert twofactor.use_recovery_code(user, typed, utcnow())
    assert not twofactor.use_recovery_code(user, codes[3], utcnow())
    assert twofactor.recovery_codes_left(user) == 9
    assert not twofactor.use_recovery_code(user, "AAAA-AAAA-AAAA-AAAA", utcnow())


# --- throttling -------------------------------------------------------------------------


def test_login_attempts_are_throttled_per_account_and_per_client():
    now = [0.0]
    limiter = MemoryCounters(clock=lambda: now[0])
    waits = [login.throttle(limiter, "alice", "198.51.100.1") for _ in range(login.PER_ACCOUNT + 1)]
    assert waits[:-1] == [0] * login.PER_ACCOUNT and 0 < waits[-1] <= login.WINDOW
    # the account stays locked from any address; Alice's name in other cases is the same account
    assert login.throttle(limiter, " ALICE ", "203.0.113.9") > 0
    # one client trying many names is stopped too
    waits = [login.throttle(limiter, f"user{i}", "203.0.113.7") for i in range(login.PER_CLIENT + 1)]
    assert waits[-1] > 0 and set(waits[:-1]) == {0}
    now[0] += login.WINDOW
    assert login.throttle(limiter, "alice", "198.51.100.1") == 0


# --- separation of duties ---------------------------------------------------------------


def test_an_edition_changed_by_one_person_must_be_approved_by_another(session):
    alice, bob = make(session, "alice"), make(session, "bob")
    moderator, viewer = make(session, "mo", "moderator"), make(session, "vi", "viewer")
    refused = can_approve(alice, alice)
    assert not refused and "someone else must approve" in refused.reason
    assert not can_approve(alice.id, alice)  # by id too
    assert can_approve(alice, bob)
    assert can_approve(None, alice)  # built by the scheduler: anyone who may approve
    assert can_approve(alice, alice, second_approver_required=False)
    assert "cannot approve" in can_approve(alice, moderator).reason
    assert not can_approve(alice, viewer, second_approver_required=False)
    disable_user(session, bob, actor="test")
    assert "disabled" in can_approve(alice, bob).reason


def test_the_second_approver_setting_is_on_unless_switched_off():
    from mailer.settings import ConfigError, Settings

    base = {"MAILER_ENV": "test", "SECRET_KEY": "k"}
    assert Settings.from_env(base).require_second_approver
    assert not Settings.from_env({**base, "REQUIRE_SECOND_APPROVER": "0"}).require_second_approver
    with pytest.raises(ConfigError, match="CONSOLE_IDLE_MINUTES"):
        Settings.from_env({**base, "CONSOLE_IDLE_MINUTES": "0"})


# --- the audit log ----------------------------------------------------------------------


def test_account_changes_are_audited_with_before_and_after(session):
    admin = make(session, "root", "admin")
    user = create_user(session, "alice", "editor", PASSWORD, actor=admin, ip="192.0.2.4")
    reset_password(session, user, reset_two_factor=True, actor=admin, ip="192.0.2.4")
    disable_user(session, user, actor=admin, ip="192.0.2.4")
    session.commit()
    entries = audit.search(session, actor="root").entries[::-1]
    assert [e.action for e in entries] == ["staff.create", "staff.reset_password", "staff.disable"]
    assert all(e.ip == "192.0.2.4" and e.actor_id == admin.id for e in entries)
    assert all((e.object_type, e.object_id) == ("staff_users", str(user.id)) for e in entries)
    assert entries[2].before["disabled"] is False and entries[2].after["disabled"] is True
    assert entries[1].after["two_factor_reset"] is True
    assert not any("argon2" in str(e.before) + str(e.after) for e in entries)  # no hash logged


def test_audit_entries_can_be_neither_changed_nor_deleted(session):
    entry = audit.record(session, "cli:root", "staff.create", ("staff_users", 1))
    session.commit()
    entry.action = "nothing.happened"
    with pytest.raises(AuditLogIsAppendOnly):
        session.commit()
    session.rollback()
    session.delete(session.get(AuditEntry, entry.id))
    with pytest.raises(AuditLogIsAppendOnly):
        session.commit()
    session.rollback()
    assert session.get(AuditEntry, entry.id).action == "staff.create"


def test_audit_search_filters_by_person_action_and_object_and_pages(session):
    for _ in range(7):
        audit.record(session, "alice", "login", ("staff_users", 1))
    audit.record(session, "bob", "staff.create", ("staff_users", 2))
    audit.record(session, "bob", "staff.disable", ("staff_users", 2))
    audit.record(session, "bob", "staff_x", None)  # "staff" must not match this as a prefix
    session.commit()
    assert audit.search(session, actor="bob", action="staff").total == 2
    assert audit.search(session, action="staff.create").total == 1
    assert audit.search(session, object_type="staff_users", object_id="2").total == 2
    first = audit.search(session, actor="alice", per_page=5)
    second = audit.search(session, actor="alice", per_page=5, page=2)
    assert (first.total, first.pages, len(first.entries), len(second.entries)) == (7, 2, 5, 2)
    assert first.entries[0].id > second.entries[0].id  # newest first


# --- mailer users -----------------------------------------------------------------------


def test_users_commands_create_list_disable_and_reset_with_an_audit_trail(app, session):
    runner = app.test_cli_runner()
    me = f"cli:{getpass.getuser()}"

    def run(*args, stdin=None):
        result = runner.invoke(main, ["users", *args], input=stdin)
        return result.exit_code, result.output

    code, out = run("create", "Root", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and "Created admin root" in out
    code, out = run("create", "root", "--role", "editor", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 1 and "already exists" in out
    code, out = run("create", "eve", "--role", "editor", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 12 characters" in out and find_user(session, "eve") is None
    code, out = run("create", "eve", "--role", "editor", stdin=f"{PASSWORD}\n{PASSWORD}\n")  # prompted
    assert code == 0, out
    code, out = run("list")
    assert code == 0 and "root" in out and "admin" in out and "no-2fa" in out and "never" in out
    code, out = run("reset-password", "eve", "--reset-2fa", "--password-stdin", stdin="a new long password\n")
    assert code == 0 and "two-factor removed" in out
    assert verify_password(find_user(session, "eve").password_hash, "a new long password")[0]
    code, out = run("disable", "eve")
    assert code == 0 and "Disabled eve" in out
    code, out = run("disable", "nobody")
    assert code == 1 and "no staff account 'nobody'" in out
    session.expire_all()
    assert "disabled" in run("list")[1].splitlines()[0]
    actions = [(e.actor, e.action, e.actor_id) for e in audit.search(session).entries[::-1]]
    assert actions == [
        (me, "staff.create", None),
        (me, "staff.create", None),
        (me, "staff.reset_password", None),
        (me, "staff.disable", None),
    ]


# --- claims (two moderators never work the same thing) ----------------------------------


NOON = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def two_moderators(session):
    a = make(session, "amina", "moderator")
    b = make(session, "bola", "moderator")
    return a, b


@BOTH_DIALECTS
def test_a_claim_is_held_renewed_released_and_taken_over_once_it_lapses(rt, session):
    amina, bola = two_moderators(session)
    assert claims.claim(session, "item", 7, amina, NOON)
    refused = claims.claim(session, "item", 7, bola, NOON + timedelta(minutes=5))
    assert not refused and refused.holder.username == "amina" and refused.holder.claimed_at == NOON
    assert refused.holder.expires_at == NOON + timedelta(minutes=claims.CLAIM_MINUTES)
    assert claims.claim(session, "item", 8, bola, NOON)  # other things stay free
    assert claims.claim(session, "post", 7, bola, NOON)  # keyed by kind too: a group post 7 is another thing
    renewed = claims.claim(session, "item", 7, amina, NOON + timedelta(minutes=20))
    assert renewed and renewed.holder.claimed_at == NOON + timedelta(minutes=20)
    later = NOON + timedelta(minutes=20 + claims.CLAIM_MINUTES - 1)
    assert claims.blocked_by(session, "item", 7, bola, later).username == "amina"
    assert claims.blocked_by(session, "item", 7, amina, later) is None
    lapsed = later + timedelta(minutes=1)
    assert claims.current(session, "item", 7, lapsed) is None
    taken = claims.claim(session, "item", 7, bola, lapsed)
    assert taken and taken.holder.username == "bola"
    assert not claims.release(session, "item", 7, amina)  # not hers any more
    assert claims.release(session, "item", 7, bola)
    assert claims.current(session, "item", 7, lapsed) is None
    session.commit()
    assert set(claims.current_many(session, "item", [7, 8, 9], NOON)) == {8}


@BOTH_DIALECTS
def test_two_moderators_racing_for_one_item_cannot_both_claim_it(rt, session):
    """Both requests loaded the page showing the item free; the database decides."""
    amina, bola = two_moderators(session)
    with rt.db.sessions() as first, rt.db.sessions() as second:
        a, b = first.get(StaffUser, amina.id), second.get(StaffUser, bola.id)
        assert claims.current(first, "item", 3, NOON) is None and claims.current(second, "item", 3, NOON) is None
        assert claims.claim(first, "item", 3, a, NOON)
        first.commit()
        lost = claims.claim(second, "item", 3, b, NOON)
        second.commit()
    assert not lost and lost.holder.username == "amina"


@BOTH_DIALECTS
def test_claims_made_at_the_same_moment_in_two_threads_leave_one_winner(rt, session):
    amina, bola = two_moderators(session)
    # an old claim that has lapsed: both threads try to take it over at once
    claims.claim(session, "item", 5, amina, NOON - timedelta(hours=2))
    session.commit()
    start = threading.Barrier(2)
    outcomes: dict[str, bool] = {}

    def attempt(user_id: int) -> None:
        with rt.db.sessions() as s:
            user = s.get(StaffUser, user_id)
            start.wait()
            outcomes[user.username] = claims.claim(s, "item", 5, user, NOON).ok
            s.commit()

    threads = [threading.Thread(target=attempt, args=(u.id,)) for u in (amina, bola)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == [False, True]
    session.expire_all()
    winner = next(name for name, ok in outcomes.items() if ok)
    assert claims.current(session, "item", 5, NOON).username == winner


def test_the_migration_encrypts_stored_totp_secrets_and_its_downgrade_decrypts_them(tmp_path):
    from sqlalchemy import create_engine, text

    from mailer.db import Database
    from mailer.schema import downgrade, upgrade
    from mailer.settings import derived_key

    keys = (derived_key("migration-key", "totp"),)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "12_staff_and_audit")
    secret = pyotp.random_base32()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO staff_users (username, role, password_hash, totp_secret, totp_last_step, disabled, "
                "session_version, created_at) VALUES ('alice', 'editor', 'x', :s, 0, 0, 1, '2026-01-01 10:00:00')"
            ),
            {"s": secret},
        )
    upgrade(url, totp_keys=keys)
    with engine.begin() as conn:
        stored = conn.execute(text("SELECT totp_secret FROM staff_users")).scalar()
    assert secret not in stored
    db = Database(url, info={"suppression_keys": (b"k" * 32,), "totp_keys": keys})
    with db.sessions() as s:
        assert twofactor.reveal(s, s.scalars(select(StaffUser)).one()) == secret
    db.dispose()
    downgrade(url, "12_staff_and_audit", totp_keys=keys)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT totp_secret FROM staff_users")).scalar() == secret
    engine.dispose()
