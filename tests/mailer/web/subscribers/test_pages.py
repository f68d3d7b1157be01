"""Request tests for every public subscriber page and its errors (real app, real queue,
memory transport)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from mailer.content.models import Partner, Topic
from subscribers.links import Links
from subscribers.models import ConsentEvent, Subscriber
from subscribers.tokens import Tokens
from tests.conftest import csrf_token, links_in
from tests.factories import received_post


@pytest.fixture
def ids(demo, session):
    return (
        {t.slug: str(t.id) for t in session.scalars(select(Topic))},
        {p.slug: str(p.id) for p in session.scalars(select(Partner))},
    )


def _form(client, path, **data):
    page = client.get(path)
    return client.post(path, data={"csrf_token": csrf_token(page.text), **data})


def _subscribe(client, ids, email="priya@riverside.example.org", **extra):
    topics, partners = ids
    data = {
        "email": email,
        "name": "Priya Patel",
        "organisation": "Riverside Surgery",
        "organisation_type": "gp_practice",
        "practice_code": "A81001",
        "topics": [topics["heart-health"]],
        **extra,
    }
    return _form(client, "/subscribe", **data)


def _mail_to(transport, address):
    return [message_from_bytes(m.data, policy=policy.default) for m in transport.messages if m.recipient == address]


def _link(msg, part):
    body = msg.get_body(("plain",)).get_content()
    return next(u for u in links_in(msg.as_bytes()) if part in u) if part in body else None


def _path(url, rt):
    return url.removeprefix(rt.settings.base_url)


def _sub(session, email="priya@riverside.example.org"):
    session.expire_all()
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def _confirmed(client, ids, transport, queue, rt, session, email="priya@riverside.example.org"):
    assert _subscribe(client, ids, email).status_code == 302
    queue()
    confirm = _path(_link(_mail_to(transport, email)[-1], "/confirm/"), rt)
    assert _form(client, confirm).status_code == 200
    sub = _sub(session, email)
    assert sub.status == "confirmed"
    return sub


def _manage_path(rt, sub, purpose="manage", days_ago=0):
    """A link of ``purpose`` for ``sub``, signed ``days_ago`` days ago (an injected clock)."""
    prefix = {"manage": "/manage/", "unsubscribe": "/u/", "confirm": "/confirm/"}[purpose]
    then = time.time() - days_ago * 86400
    tokens = Tokens(rt.settings.secret_key, clock=lambda: then) if days_ago else Tokens(rt.settings.secret_key)
    return prefix + tokens.make(purpose, sub.id, sub.token_version)


# --- subscribing ---------------------------------------------------------------------


def test_subscribe_page_states_the_no_topic_rule_and_organisation_types(client, ids):
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert "If you choose no topics, you will receive only the items of the partners you follow" in page.text
    for label in (
        "GP practice",
        "NHS trust",
        "BME staff network",
        "Voluntary organisation",
        "Local authority",
        "Other",
    ):
        assert label in page.text
    assert "Practice or organisation code" in page.text


def test_subscribe_sends_a_confirmation_that_confirms_on_button_press(client, ids, transport, queue, rt, session):
    resp = _subscribe(client, ids)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/subscribe/check-email")
    assert "works for 7 days" in client.get("/subscribe/check-email").text
    queue()
    (msg,) = _mail_to(transport, "priya@riverside.example.org")
    assert msg["Subject"].startswith("Please confirm")
    sub = _sub(session)
    # Until confirmed, what was typed is only a request; the profile stays blank.
    assert (sub.status, sub.name, sub.organisation_type, sub.topics) == ("pending", "", "", [])
    assert sub.pending_request["practice_code"] == "A81001"
    path = _path(_link(msg, "/confirm/"), rt)
    page = client.get(path)  # a mail scanner's GET changes nothing
    assert "Confirm my subscription" in page.text and _sub(session).status == "pending"
    assert "Priya Patel" in page.text and "Heart health" in page.text  # what is being confirmed
    assert client.post(path, data={}).status_code == 400  # no CSRF token: nothing happens
    assert _sub(session).status == "pending"
    assert _form(client, path).status_code == 200
    sub = _sub(session)
    assert (sub.status, sub.name, sub.organisation_type, sub.practice_code) == (
        "confirmed",
        "Priya Patel",
        "gp_practice",
        "A81001",
    )
    assert [t.slug for t in sub.topics] == ["heart-health"] and sub.pending_request is None


def _bodies(msg):
    return msg.get_body(("plain",)).get_content() + msg.get_body(("html",)).get_content()


def test_subscribing_someone_elses_address_changes_nothing_and_greets_no_typed_name(
    app, client, ids, transport, queue, rt, session
):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    assert (
        app.test_client().post(_manage_path(rt, sub, "unsubscribe"), data={"List-Unsubscribe": "One-Click"}).status_code
        == 200
    )
    transport.messages.clear()
    topics, partners = ids
    stranger = app.test_client()
    for address in ("priya@riverside.example.org", "someone.new@example.org"):
        assert (
            _subscribe(
                stranger,
                ids,
                address,
                name="Mallory Prankster",
                organisation="Prank Ltd",
                topics=[topics["policy"]],
                partners=[partners["naz-project-london"]],
            ).status_code
            == 302
        )
    queue()
    for address in ("priya@riverside.example.org", "someone.new@example.org"):
        (msg,) = _mail_to(transport, address)
        assert msg["Subject"].startswith("Please confirm")
        assert "Mallory" not in _bodies(msg) and "Mallory" not in msg["To"]
    assert "Hello," in _mail_to(transport, "someone.new@example.org")[0].get_body(("plain",)).get_content()
    after = _sub(session)
    assert (after.name, after.organisation, after.practice_code) == ("Priya Patel", "Riverside Surgery", "A81001")
    assert [t.slug for t in after.topics] == ["heart-health"] and after.partners == []
    # The owner's preference page still shows their own details.
    page = client.get(_manage_path(rt, after))
    assert 'value="Priya Patel"' in page.text and "Mallory" not in page.text


@pytest.mark.parametrize(
    "data, field_message",
    [
        ({"email": "not an address"}, "An email address must have an @-sign"),
        ({"topics": []}, "Choose at least one topic or partner."),
        ({"name": "Eve\r\nBcc: all@example.org"}, "must not contain line breaks"),
        ({"practice_code": "XYZ"}, "A GP practice code is a letter and five digits"),
        ({"organisation_type": "pharmacy"}, "Choose one of the organisation types listed."),
        ({"topics": ["999999"]}, "One of the topics chosen does not exist."),
    ],
)
def test_bad_subscribe_input_gets_a_clear_message_and_changes_nothing(
    client, ids, transport, queue, session, data, field_message
):
    resp = _subscribe(client, ids, **data)
    assert resp.status_code == 400
    assert field_message in resp.text
    queue()
    assert transport.messages == []
    assert _sub(session) is None


def test_forms_refuse_a_missing_csrf_token(client, ids, session):
    topics, _ = ids
    resp = client.post("/subscribe", data={"email": "a@example.org", "topics": [topics["policy"]]})
    assert resp.status_code == 400 and "This form expired" in resp.text
    assert _sub(session, "a@example.org") is None
    assert client.post("/manage", data={"email": "a@example.org"}).status_code == 400


def test_known_address_gets_same_page_and_a_manage_email_not_a_change(client, ids, transport, queue, rt, session):
    _confirmed(client, ids, transport, queue, rt, session)
    transport.messages.clear()
    resp = _subscribe(client, ids, name="Mallory", topics=[ids[0]["policy"]])
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/subscribe/check-email")
    queue()
    (msg,) = _mail_to(transport, "priya@riverside.example.org")
    assert "already subscribed" in msg.get_body(("plain",)).get_content()
    assert _link(msg, "/manage/") and not _link(msg, "/confirm/")
    sub = _sub(session)
    assert sub.name == "Priya Patel" and [t.slug for t in sub.topics] == ["heart-health"]


def test_oversized_request_is_refused(client, ids, session):
    resp = client.post("/subscribe", data={"email": "a@example.org", "name": "x" * 300_000})
    assert resp.status_code == 413 and "too large" in resp.text
    assert _sub(session, "a@example.org") is None


def test_expired_confirmation_link_gets_a_clear_page(client, ids, transport, queue, rt, session):
    _subscribe(client, ids)
    sub = _sub(session)
    path = _manage_path(rt, sub, "confirm", days_ago=8)  # the link was made long ago
    resp = client.get(path)
    assert resp.status_code == 410
    assert "This link has expired" in resp.text and "Subscribe again" in resp.text
    assert _sub(session).status == "pending"
    # Someone who confirmed in time and opens the old link later is told they are in.
    with rt.db.transaction() as s:
        s.get(Subscriber, sub.id).status = "confirmed"
    resp = client.get(path)
    assert resp.status_code == 200 and "You are subscribed" in resp.text


# --- link errors ---------------------------------------------------------------------


def test_tampered_wrong_purpose_and_revoked_links_each_get_a_clear_page(client, ids, transport, queue, rt, session):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    manage = _manage_path(rt, sub)
    resp = client.get(manage[:-4] + "abcd")
    assert resp.status_code == 400 and "copied incompletely" in resp.text
    resp = client.get("/manage/" + _manage_path(rt, sub, "unsubscribe").removeprefix("/u/"))
    assert resp.status_code == 400 and "This is a link to unsubscribe, not to manage a subscription" in resp.text
    resp = client.get("/u/" + manage.removeprefix("/manage/"))
    assert resp.status_code == 400 and "not to unsubscribe" in resp.text
    assert _sub(session).status == "confirmed"
    # Revoke from the page: the old link stops, a fresh one arrives by email.
    transport.messages.clear()
    resp = client.post(manage + "/revoke", data={"csrf_token": csrf_token(client.get(manage).text)})
    assert resp.status_code == 200 and "stopped working" in resp.text
    queue()
    resp = client.get(manage)
    assert resp.status_code == 410 and "replaced by a newer one" in resp.text
    assert "email you a fresh link" in resp.text
    (msg,) = _mail_to(transport, "priya@riverside.example.org")
    assert client.get(_path(_link(msg, "/manage/"), rt)).status_code == 200
    assert client.get("/manage/x").status_code == 400


# --- link lifetimes ------------------------------------------------------------------


def test_a_five_year_old_manage_link_offers_a_fresh_one_but_its_unsubscribe_link_still_works(
    client, app, ids, transport, queue, rt, session
):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    old = _manage_path(rt, sub, days_ago=5 * 365)
    page = client.get(old)
    assert page.status_code == 410 and "This link has expired" in page.text
    assert "priya" not in page.text  # nothing about the person behind it
    assert "work for 90 days" in page.text and "Email me a fresh link" in page.text
    for path in (old + "/data", old + "/erase"):  # data download and erasure need a fresh link too
        resp = client.get(path)
        assert resp.status_code == 410 and resp.mimetype == "text/html"
    assert (
        client.post(
            old, data={"csrf_token": csrf_token(page.text), "name": "Mallory", "topics": [ids[0]["policy"]]}
        ).status_code
        == 410
    )
    assert _sub(session).name == "Priya Patel"
    # One press mails a fresh link to the address on file, and that link works.
    transport.messages.clear()
    renew = page.text.split('action="')[1].split('"')[0]
    resp = client.post(renew, data={"csrf_token": csrf_token(page.text)})
    assert resp.status_code == 200 and "emailed a fresh link" in resp.text
    queue()
    (msg,) = _mail_to(transport, "priya@riverside.example.org")
    fresh = _path(_link(msg, "/manage/"), rt)
    assert client.get(fresh).status_code == 200
    assert client.post(renew, data={}).status_code == 400  # the button needs its CSRF token
    # The unsubscribe link in a five-year-old digest still works, one-click included.
    old_unsubscribe = _manage_path(rt, sub, "unsubscribe", days_ago=5 * 365)
    assert client.get(old_unsubscribe).status_code == 200
    resp = app.test_client().post(old_unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200 and _sub(session).status == "unsubscribed"


def test_manage_links_work_for_manage_link_max_age_days(settings, transport, ids, queue, rt, session, client):
    from mailer.app import create_app

    sub = _confirmed(client, ids, transport, queue, rt, session)
    assert client.get(_manage_path(rt, sub, days_ago=89)).status_code == 200
    assert client.get(_manage_path(rt, sub, days_ago=91)).status_code == 410
    short = create_app(dataclasses.replace(settings, manage_link_max_age_days=30), transport).test_client()
    assert short.get(_manage_path(rt, sub, days_ago=29)).status_code == 200
    assert short.get(_manage_path(rt, sub, days_ago=31)).status_code == 410


def test_a_revoked_expired_manage_link_cannot_ask_for_a_fresh_one(client, ids, transport, queue, rt, session):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    old = _manage_path(rt, sub, days_ago=200)
    page = client.get(old)
    with rt.db.transaction() as s:
        s.get(Subscriber, sub.id).token_version += 1
    transport.messages.clear()
    renew = page.text.split('action="')[1].split('"')[0]
    resp = client.post(renew, data={"csrf_token": csrf_token(page.text)})
    assert resp.status_code == 410 and "replaced by a newer one" in resp.text
    queue()
    assert transport.messages == []


# --- the preference centre -----------------------------------------------------------


def test_manage_page_changes_everything_and_records_it(client, ids, transport, queue, rt, session):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    path = _manage_path(rt, sub)
    page = client.get(path)
    assert "priya@riverside.example.org" in page.text and 'value="A81001"' in page.text
    topics, partners = ids
    resp = client.post(
        path,
        data={
            "csrf_token": csrf_token(page.text),
            "name": "Priya P.",
            "organisation": "Riverside Health Centre",
            "organisation_type": "nhs_trust",
            "practice_code": "",
            "topics": [],
            "partners": [partners["afiya-trust"]],
        },
    )
    assert resp.status_code == 200 and "apply from the next digest" in resp.text
    sub = _sub(session)
    assert (sub.name, sub.organisation, sub.organisation_type) == ("Priya P.", "Riverside Health Centre", "nhs_trust")
    assert sub.topics == [] and [p.slug for p in sub.partners] == ["afiya-trust"]
    # Neither a topic nor a partner: refused, nothing changes.
    resp = client.post(path, data={"csrf_token": csrf_token(page.text), "name": "X", "topics": [], "partners": []})
    assert resp.status_code == 400 and "Choose at least one topic or partner." in resp.text
    assert _sub(session).name == "Priya P."
    # Without the CSRF token nothing changes either.
    assert client.post(path, data={"name": "Y", "topics": [topics["policy"]]}).status_code == 400
    assert _sub(session).name == "Priya P."
    kinds = [e.kind for e in session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id))]
    assert kinds == ["subscribed", "confirmed", "changed"]


def test_pause_and_resume(client, ids, transport, queue, rt, session):
    from datetime import date, timedelta

    sub = _confirmed(client, ids, transport, queue, rt, session)
    path = _manage_path(rt, sub)
    token = csrf_token(client.get(path).text)
    resp = client.post(path + "/pause", data={"csrf_token": token, "until": "2001-01-01"})
    assert resp.status_code == 400 and "Choose a date after today." in resp.text
    resp = client.post(path + "/pause", data={"csrf_token": token, "until": "soon"})
    assert resp.status_code == 400 and "Not a valid date" in resp.text
    until = date.today() + timedelta(days=40)
    resp = client.post(path + "/pause", data={"csrf_token": token, "until": until.isoformat()})
    assert resp.status_code == 200 and "paused until" in resp.text
    assert _sub(session).paused_until == until
    resp = client.post(path + "/resume", data={"csrf_token": token})
    assert resp.status_code == 200 and _sub(session).paused_until is None


def test_download_my_data(client, ids, transport, queue, rt, session):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    resp = client.get(_manage_path(rt, sub) + "/data")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert "attachment" in resp.headers["Content-Disposition"] and resp.headers["Cache-Control"] == "no-store"
    data = json.loads(resp.data)
    assert data["profile"]["email"] == "priya@riverside.example.org"
    assert [e["event"] for e in data["consent_ledger"]] == ["subscribed", "confirmed"]
    assert data["choices"]["topics"] == ["Heart health"]


def test_erase_me(client, ids, transport, queue, rt, session):
    from mailer.groups import directory, service
    from mailer.groups.models import GroupPost

    sub = _confirmed(client, ids, transport, queue, rt, session)
    # The same person posts in a group: erasure reaches the group's archive too.
    group = directory.create_group(session, "bme", "BME networks")
    service.add_members(session, group, ["priya@riverside.example.org"], basis="consent")
    raw = b"From: Priya Patel <priya@riverside.example.org>\r\nSubject: Hi\r\n\r\nMy words\r\n"
    got = received_post(session, group, raw, "x@y")
    session.commit()
    path = _manage_path(rt, sub)
    page = client.get(path + "/erase")
    assert page.status_code == 200 and "cannot be undone" in page.text
    assert client.post(path + "/erase", data={}).status_code == 400
    assert _sub(session) is not None
    resp = client.post(path + "/erase", data={"csrf_token": csrf_token(page.text)})
    assert resp.status_code == 200 and "Your data is erased" in resp.text
    assert _sub(session) is None
    session.expire_all()
    post = session.get(GroupPost, got.post_id)
    assert (post.status, post.author_email, post.author_name, post.body_text, post.raw) == ("removed", "", "", "", b"")
    assert "removed at the author" in client.get(f"/groups/bme/posts/{post.id}").text
    assert client.get(path).status_code == 410
    # Subscribing again is allowed (the person opts in afresh) and needs confirmation.
    transport.messages.clear()
    assert _subscribe(client, ids).status_code == 302
    queue()
    assert _link(_mail_to(transport, "priya@riverside.example.org")[0], "/confirm/")


# --- unsubscribe and re-subscribe ----------------------------------------------------


def test_unsubscribe_page_asks_first_then_offers_resubscribe(client, ids, transport, queue, rt, session):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    u = _manage_path(rt, sub, "unsubscribe")
    page = client.get(u)
    assert page.status_code == 200 and "Unsubscribe?" in page.text and _sub(session).status == "confirmed"
    assert client.post(u, data={}).status_code == 400 and _sub(session).status == "confirmed"
    done = client.post(u, data={"List-Unsubscribe": "One-Click", "from": "page"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert _sub(session).status == "unsubscribed"
    # The page offers to come back, which takes a fresh confirmation.
    assert "Subscribe me again" in done.text
    transport.messages.clear()
    action = done.text.split('action="')[1].split('"')[0]
    resp = client.post(action, data={"csrf_token": csrf_token(done.text)})
    assert resp.status_code == 200 and "Check your email" in resp.text
    assert _sub(session).status == "pending"
    queue()
    (msg,) = _mail_to(transport, "priya@riverside.example.org")
    assert _form(client, _path(_link(msg, "/confirm/"), rt)).status_code == 200
    assert _sub(session).status == "confirmed"


def test_one_click_needs_no_cookie_or_csrf(app, ids, transport, queue, rt, session, client):
    sub = _confirmed(client, ids, transport, queue, rt, session)
    fresh = app.test_client()
    resp = fresh.post(_manage_path(rt, sub, "unsubscribe"), data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert _sub(session).status == "unsubscribed"
    event = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert (event.kind, event.source) == ("unsubscribed", "one-click")


# --- email me my link ----------------------------------------------------------------


def test_email_me_my_link_says_the_same_for_known_and_unknown(client, ids, transport, queue, rt, session):
    _confirmed(client, ids, transport, queue, rt, session)
    transport.messages.clear()
    known = _form(client, "/manage", email="Priya@riverside.example.org")
    unknown = _form(client, "/manage", email="nobody@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    queue()
    assert [m.recipient for m in transport.messages] == ["priya@riverside.example.org"]
    msg = _mail_to(transport, "priya@riverside.example.org")[0]
    assert msg["Subject"] == "Your link to manage the campaign digest"
    assert client.get(_path(_link(msg, "/manage/"), rt)).status_code == 200
    bad = _form(client, "/manage", email="nope")
    assert bad.status_code == 400 and "@-sign" in bad.text


def test_email_me_my_link_is_rate_limited_per_address_and_per_client(settings, transport, rt, ids, queue, session):
    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, rate_per_address=2, rate_per_client=5), transport)
    client = app.test_client()
    with rt.db.transaction() as s:
        s.add(Subscriber(email="amina@example.org", status="confirmed", topics=[s.scalar(select(Topic))]))
    pages = [_form(client, "/manage", email="amina@example.org") for _ in range(3)]
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert pages[0].text == pages[2].text  # the limit is silent: nothing revealed
    queue()
    assert len(transport.messages) == 2
    for other in ("other@example.org", "fifth@example.org"):  # the client's 4th and 5th
        assert _form(client, "/manage", email=other).status_code == 200
    blocked = _form(client, "/manage", email="third@example.org")
    assert blocked.status_code == 429 and "Too many requests" in blocked.text
    # It says when to come back: within the hour's window, and the page agrees.
    assert 3000 < int(blocked.headers["Retry-After"]) <= 3600
    assert "try again in 60 minutes" in blocked.text or "try again in 59 minutes" in blocked.text
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"  # another client is not held back
    assert _form(other, "/manage", email="fourth@example.org").status_code == 200


def _behind_proxy(app, peer, forwarded_for):
    c = app.test_client()
    c.environ_base.update(REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded_for)
    return c


def test_behind_a_trusted_proxy_each_client_has_its_own_limit_and_its_own_address_in_the_ledger(
    settings, transport, rt, ids, queue, session
):
    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, trusted_proxies=1, rate_per_client=2), transport)
    proxy = "10.0.0.2"
    # The proxy appends the address it saw; whatever the client wrote before it is not believed.
    noisy = _behind_proxy(app, proxy, "198.51.100.1, 203.0.113.9")
    pages = [_subscribe(noisy, ids, f"reader{i}@example.org") for i in range(3)]
    assert [p.status_code for p in pages] == [302, 302, 429]
    assert int(pages[2].headers["Retry-After"]) > 0
    # Everyone else behind the same proxy can still sign up, even one forging the noisy
    # client's address further left: only the proxy's own entry counts.
    other = _behind_proxy(app, proxy, "203.0.113.9, 192.0.2.44")
    assert _subscribe(other, ids, "colleague@example.org").status_code == 302
    ips = {e.ip for e in session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "subscribed"))}
    assert ips == {"203.0.113.9", "192.0.2.44"}


def test_forwarded_headers_are_ignored_without_trusted_proxies(settings, transport, rt, ids, session):
    from mailer.app import create_app

    app = create_app(dataclasses.replace(settings, rate_per_client=2), transport)
    pages = [
        _subscribe(_behind_proxy(app, "192.0.2.10", f"203.0.113.{i}"), ids, f"r{i}@example.org") for i in range(3)
    ]  # a client rotating X-Forwarded-For is still one client
    assert [p.status_code for p in pages] == [302, 302, 429]
    ips = {e.ip for e in session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "subscribed"))}
    assert ips == {"192.0.2.10"}


def test_subscribe_form_cannot_be_used_to_flood_an_inbox(settings, transport, rt, ids, queue, session):
    from mailer.app import create_app

    client = create_app(dataclasses.replace(settings, rate_per_address=2), transport).test_client()
    pages = [_subscribe(client, ids, "target@example.org") for _ in range(4)]
    assert {p.status_code for p in pages} == {302}
    queue()
    assert len(_mail_to(transport, "target@example.org")) == 2


def test_email_me_my_link_resends_the_confirmation_to_a_pending_address(client, ids, transport, queue, rt, session):
    _subscribe(client, ids)
    queue()
    transport.messages.clear()
    assert _form(client, "/manage", email="priya@riverside.example.org").status_code == 200
    queue()
    (msg,) = _mail_to(transport, "priya@riverside.example.org")
    assert _link(msg, "/confirm/") and not _link(msg, "/manage/")


def test_ip_addresses_stay_out_of_the_ledger_when_not_configured(settings, transport, rt, ids, queue, session):
    from mailer.app import create_app

    client = create_app(dataclasses.replace(settings, consent_log_ip=False), transport).test_client()
    assert _subscribe(client, ids).status_code == 302
    event = session.scalar(select(ConsentEvent).where(ConsentEvent.kind == "subscribed"))
    assert event.ip is None


def test_ip_addresses_are_recorded_when_configured(client, ids, session):
    assert _subscribe(client, ids).status_code == 302
    assert session.scalar(select(ConsentEvent).where(ConsentEvent.kind == "subscribed")).ip == "127.0.0.1"


# --- Request tests for the public subscriber pages: happy paths and bad input. (was tests/test_subscribe_pages.py)
def _subscribe_form(client, **fields):
    page = client.get("/subscribe")
    data = {
        "csrf_token": csrf_token(page.text),
        "email": "a.person@example.org",
        "name": "A Person",
        "organisation": "Oak Surgery",
    }
    data.update(fields)
    return client.post("/subscribe", data=data)


def _rows(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def id_numbers(session, demo):
    topics = {t.slug: t.id for t in session.scalars(select(Topic))}
    partners = {p.slug: p.id for p in session.scalars(select(Partner))}
    return topics, partners


def test_subscribe_page_lists_topics_and_partners_and_explains_no_topic(client, demo):
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert "Sexual health" in page.text and "Naz Project London" in page.text
    assert "If you choose no topics, you will receive only the items of the partners you follow" in page.text


def test_subscribing_creates_pending_subscriber_and_queues_confirmation(client, session, transport, queue, id_numbers):
    topics, partners = id_numbers
    resp = _subscribe_form(client, topics=[str(topics["heart-health"])], partners=[str(partners["afiya-trust"])])
    assert resp.status_code == 302 and resp.location.endswith("/subscribe/check-email")
    queue()
    sub = session.scalar(select(Subscriber).where(Subscriber.email == "a.person@example.org"))
    assert sub.status == "pending"
    assert sub.pending_request["topics"] == [topics["heart-health"]]
    assert sub.pending_request["partners"] == [partners["afiya-trust"]]
    assert sub.topics == [] and sub.partners == []  # applied only when confirmed
    assert [e.kind for e in session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id))] == [
        "subscribed"
    ]
    (msg,) = transport.messages
    assert msg.recipient == "a.person@example.org"
    assert any("/confirm/" in u for u in links_in(msg.data))


def test_partner_only_subscription_is_allowed(client, session, id_numbers):
    _, partners = id_numbers
    assert _subscribe_form(client, partners=[str(partners["naz-project-london"])]).status_code == 302


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"email": "not-an-address"}, "An email address must have an @-sign."),
        ({"email": "someone@exa mple.org"}, "email address"),
        ({"email": ""}, "Enter your email address."),
        ({"topics": []}, "Choose at least one topic or partner."),
        ({"topics": ["99999"]}, "One of the topics chosen does not exist."),
        ({"name": "Eve\r\nBcc: victim@example.com"}, "must not contain line breaks"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_writes_nothing(
    client, session, transport, queue, id_numbers, fields, message
):
    topics, _ = id_numbers
    before = _rows(session, Subscriber)
    data = {"topics": [str(topics["heart-health"])]}
    data.update(fields)
    resp = _subscribe_form(client, **data)
    assert resp.status_code == 400
    assert message.lower() in resp.text.lower()
    assert _rows(session, Subscriber) == before
    queue()
    assert transport.messages == []


def test_missing_csrf_token_is_refused(client, session, id_numbers):
    topics, _ = id_numbers
    before = _rows(session, Subscriber)
    resp = client.post("/subscribe", data={"email": "x@example.org", "topics": [str(topics["heart-health"])]})
    assert resp.status_code == 400
    assert "form expired or was not sent from our page" in resp.text
    assert _rows(session, Subscriber) == before


def test_existing_confirmed_address_gets_manage_email_and_page_reveals_nothing(
    client, session, transport, queue, id_numbers
):
    topics, _ = id_numbers
    known = "practice.manager@thepeaks.example.org"
    new = _subscribe_form(client, email="someone.new@example.org", topics=[str(topics["heart-health"])])
    again = _subscribe_form(client, email=known, topics=[str(topics["sexual-health"])])
    assert new.status_code == again.status_code == 302 and new.location == again.location
    queue()
    by_rcpt = {m.recipient: m for m in transport.messages}
    assert any("/manage/" in u for u in links_in(by_rcpt[known].data))
    assert not any("/confirm/" in u for u in links_in(by_rcpt[known].data))
    sub = session.scalar(select(Subscriber).where(Subscriber.email == known))
    assert [t.slug for t in sub.topics] == ["heart-health"]  # a stranger cannot change them


def test_confirm_link_get_asks_and_post_confirms(client, session, rt, id_numbers):
    topics, _ = id_numbers
    _subscribe_form(client, topics=[str(topics["heart-health"])])
    sub = session.scalar(select(Subscriber).where(Subscriber.email == "a.person@example.org"))
    path = Links(rt.settings).confirm(sub.id, sub.token_version).removeprefix(rt.settings.base_url)
    page = client.get(path)
    session.refresh(sub)
    assert page.status_code == 200 and sub.status == "pending"  # a link scanner confirms nothing
    resp = client.post(path, data={"csrf_token": csrf_token(page.text)})
    assert resp.status_code == 200 and "You are subscribed" in resp.text
    session.refresh(sub)
    assert sub.status == "confirmed"


@pytest.mark.parametrize("path", ["/confirm/garbage", "/manage/WzEsMV0.abc.def", "/u/x"])
def test_forged_tokens_get_a_clear_page(client, demo, path):
    resp = client.get(path)
    assert resp.status_code == 400
    assert "We cannot use this link" in resp.text


def test_token_for_another_purpose_is_refused(client, session, rt, demo):
    sub = session.scalar(select(Subscriber).limit(1))
    manage_token = Links(rt.settings).manage(sub.id, sub.token_version).rsplit("/", 1)[1]
    resp = client.post(f"/u/{manage_token}", data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 400
    session.refresh(sub)
    assert sub.status == "confirmed"


def test_revoked_token_is_refused(client, session, rt, demo):
    sub = session.scalar(select(Subscriber).limit(1))
    url = Links(rt.settings).unsubscribe(sub.id, sub.token_version)
    sub.token_version += 1
    session.commit()
    resp = client.post(url.removeprefix(rt.settings.base_url), data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 410 and "replaced by a newer one" in resp.text


def test_unsubscribe_get_only_asks_and_one_click_post_needs_no_cookie(client, session, rt, demo):
    sub = session.scalar(select(Subscriber).limit(1))
    path = Links(rt.settings).unsubscribe(sub.id, sub.token_version).removeprefix(rt.settings.base_url)
    page = client.get(path)
    session.refresh(sub)
    assert page.status_code == 200 and "Unsubscribe?" in page.text and sub.status == "confirmed"
    resp = rt and client.application.test_client().post(path, data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200 and "Location" not in resp.headers
    session.refresh(sub)
    assert sub.status == "unsubscribed"
    events = session.scalars(
        select(ConsentEvent.source).where(ConsentEvent.subscriber_id == sub.id, ConsentEvent.kind == "unsubscribed")
    ).all()
    assert events == ["one-click"]
    # Doing it again is harmless.
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_manage_page_changes_preferences(client, session, rt, id_numbers):
    topics, partners = id_numbers
    sub = session.scalar(select(Subscriber).where(Subscriber.email == "practice.manager@thepeaks.example.org"))
    path = Links(rt.settings).manage(sub.id, sub.token_version).removeprefix(rt.settings.base_url)
    page = client.get(path)
    assert page.status_code == 200 and sub.email in page.text
    checked = set(re.findall(r'<input checked[^>]*value="(\d+)"', page.text))
    assert checked == {
        str(topics["heart-health"]),
        str(partners["afiya-trust"]),
        str(partners["race-equality-foundation"]),
    }
    resp = client.post(
        path,
        data={
            "csrf_token": csrf_token(page.text),
            "name": "David Okafor",
            "organisation": "The Peaks",
            "topics": [str(topics["mental-health"])],
            "partners": [str(partners["diverse-minds"])],
        },
    )
    assert resp.status_code == 200 and "preferences are saved" in resp.text
    session.refresh(sub)
    assert [t.slug for t in sub.topics] == ["mental-health"]
    assert [p.slug for p in sub.partners] == ["diverse-minds"]
    assert sub.organisation == "The Peaks"
    # Emptying every choice is refused and changes nothing.
    resp = client.post(path, data={"csrf_token": csrf_token(page.text), "name": "", "organisation": ""})
    assert resp.status_code == 400 and "Choose at least one topic or partner." in resp.text
    session.refresh(sub)
    assert [t.slug for t in sub.topics] == ["mental-health"]


def test_an_oversized_subscribe_form_is_refused(client, demo):
    resp = client.post("/subscribe", data={"email": "x" * (300 * 1024)})
    assert resp.status_code == 413


def test_subscribing_a_non_ascii_address_with_a_name_writes_the_confirmation_to_the_outbox(
    settings, session, queue, id_numbers, tmp_path
):
    """Issue 9 finding 4: the confirmation failed eight times with UnicodeEncodeError while
    the page said "Check your email". The file outbox writes it as UTF-8 (RFC 6532). The
    request is greeted without the typed name (finding 9); once the owner's profile holds
    the name, their link email carries it as an encoded display name."""
    from email import message_from_string, policy

    from mailer.app import create_app
    from mailer.mail.transport import FileOutbox
    from mailer.mail.verp import SUBSCRIBER, ReturnPaths

    address = "عائشہ.خان@example.org"
    outbox = tmp_path / "outbox"
    client = create_app(settings, FileOutbox(outbox)).test_client()

    def written(eml):
        msg = message_from_string(eml.read_bytes().decode("utf-8"), policy=policy.default)
        (to,) = msg["To"].addresses
        return msg, (to.display_name, to.addr_spec)

    resp = _subscribe_form(client, email=address, name="عائشہ خان", topics=[str(id_numbers[0]["heart-health"])])
    assert resp.status_code == 302 and resp.location.endswith("/subscribe/check-email")
    queue()
    (eml,) = outbox.glob("*.eml")
    msg, to = written(eml)
    assert to == ("", address)
    assert any("/confirm/" in u for u in links_in(eml.read_bytes()))
    assert msg["Auto-Submitted"] == "auto-generated"
    sub = session.scalar(select(Subscriber).where(Subscriber.email == address))
    paths = ReturnPaths(settings.secret_key, settings.delivery, settings.sender_domain)
    assert paths.target(msg["Return-Path"]).kind == SUBSCRIBER and paths.target(msg["Return-Path"]).id == sub.id

    sub.name, sub.status = "عائشہ خان", "confirmed"
    session.commit()
    eml.unlink()
    page = client.get("/manage")
    client.post("/manage", data={"csrf_token": csrf_token(page.text), "email": address})
    queue()
    (eml,) = outbox.glob("*.eml")
    assert written(eml)[1] == ("عائشہ خان", address)


def _footer_band(html: str, text: str) -> str:
    """The markup from the opening of the (600 px) section holding ``text`` up to it."""
    at = html.index(text)
    return html[[m.start() for m in re.finditer(r"<div[^>]*max-width:600px", html[:at])][-1] : at]


@pytest.mark.parametrize("kind", ["confirm", "manage", "link"])
def test_subscriber_emails_have_a_heading_an_isolated_name_and_a_footer_on_the_page_colour(settings, session, kind):
    """Issue 9 finding 18: no h1, an RTL name not isolated, white bands round the footer."""
    from email import message_from_bytes, policy

    from mailer.delivery.transactional import compose_transactional

    sub = Subscriber(email="aisha@example.org", name="عائشہ خان", status="pending")
    session.add(sub)
    session.flush()
    msg = message_from_bytes(compose_transactional(kind, settings, sub).data, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    assert len(re.findall(r"<h1\b", html)) == 1
    assert "Hello<bdi> عائشہ خان</bdi>," in html
    band = _footer_band(html, "c/o Campaign Office")
    assert band.startswith('<div class="muted"') and "#ffffff" not in band.lower()
    assert not re.search(r'\s(?:height|width)="(?!\d+%?")[^"]*"', html)
    assert "End Racism This Generation, End Racism This Generation" not in html
    text = msg.get_body(("plain",)).get_content()
    assert text.count("End Racism This Generation, c/o Campaign Office") == 1
