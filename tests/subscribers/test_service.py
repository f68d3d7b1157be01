"""The subscription lifecycle rules, against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from mailer.content.models import Partner, Topic
from mailer.db import utcnow
from mailer.validation import InvalidInput, email_address
from subscribers import rights, service, suppression
from subscribers.housekeeping import purge_unconfirmed
from subscribers.models import ConsentEvent, Subscriber, Suppression
from subscribers.tokens import TokenError, Tokens


@pytest.fixture
def catalogue(demo, session):
    topics = {t.slug: t.id for t in session.scalars(select(Topic))}
    partners = {p.slug: p.id for p in session.scalars(select(Partner))}
    return topics, partners


def _choices(s, catalogue, topics=("heart-health",), partners=(), **kw):
    t, p = catalogue
    return service.validate_choices(
        s,
        kw.pop("name", "Priya Patel"),
        kw.pop("organisation", "Riverside Surgery"),
        [t[x] for x in topics],
        [p[x] for x in partners],
        **kw,
    )


def _ledger(s, sub):
    return [
        e.kind
        for e in s.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id).order_by(ConsentEvent.id))
    ]


def _new_confirmed(s, catalogue, email="priya@riverside.example.org", **kw):
    out = service.subscribe(s, email, _choices(s, catalogue, **kw), ip="192.0.2.1")
    service.confirm(s, out.subscriber)
    return out.subscriber


def test_no_topic_means_partners_only_and_neither_is_refused(rt, catalogue):
    with rt.db.transaction() as s:
        c = _choices(s, catalogue, topics=(), partners=("afiya-trust",))
        assert c.topics == [] and [p.slug for p in c.partners] == ["afiya-trust"]
        with pytest.raises(InvalidInput) as err:
            _choices(s, catalogue, topics=(), partners=())
        assert err.value.field == "topics" and "at least one topic or partner" in err.value.message


def test_organisation_type_and_practice_code_are_checked(rt, catalogue):
    with rt.db.transaction() as s:
        c = _choices(s, catalogue, organisation_type="gp_practice", practice_code=" a81001 ")
        assert (c.organisation_type, c.practice_code) == ("gp_practice", "A81001")
        c = _choices(s, catalogue, organisation_type="nhs_trust", practice_code="rw3")
        assert c.practice_code == "RW3"
        with pytest.raises(InvalidInput, match="letter and five digits"):
            _choices(s, catalogue, organisation_type="gp_practice", practice_code="12345")
        with pytest.raises(InvalidInput) as err:
            _choices(s, catalogue, organisation_type="pharmacy")
        assert err.value.field == "organisation_type"


def test_names_with_line_breaks_are_refused(rt, catalogue):
    with rt.db.transaction() as s:
        with pytest.raises(InvalidInput) as err:
            _choices(s, catalogue, name="Eve\r\nBcc: everyone@example.org")
        assert err.value.field == "name"
        with pytest.raises(InvalidInput):
            email_address("email", "eve@example.org\r\nBcc: x@example.org")


def test_internationalised_addresses_are_accepted_without_dns():
    assert email_address("email", "José.Ñúñez@Bücher.example") == "José.Ñúñez@bücher.example"
    with pytest.raises(InvalidInput):
        email_address("email", "not-an-address")


def test_existing_confirmed_address_is_not_changed_and_gets_a_manage_email(rt, catalogue):
    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue)
        out = service.subscribe(
            s,
            "PRIYA@riverside.example.org".replace("PRIYA", "priya"),
            _choices(s, catalogue, topics=("policy",), name="Mallory"),
        )
        assert out.email_to_send == "manage" and out.subscriber.id == sub.id
        assert sub.name == "Priya Patel" and [t.slug for t in sub.topics] == ["heart-health"]
        assert sub.status == "confirmed"


def test_a_stranger_resubscribing_an_address_changes_nothing_until_its_owner_confirms(rt, catalogue):
    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue, organisation_type="gp_practice", practice_code="A81001")
        service.unsubscribe(s, sub, source="one-click")
        out = service.subscribe(
            s,
            "priya@riverside.example.org",
            _choices(
                s, catalogue, topics=("policy",), partners=("afiya-trust",), name="Mallory", organisation="Evil Corp"
            ),
        )
        assert out.email_to_send == "confirm" and out.subscriber is sub
        # The person's profile and choices are as they left them; the request waits apart.
        assert (sub.name, sub.organisation, sub.practice_code) == ("Priya Patel", "Riverside Surgery", "A81001")
        assert [t.slug for t in sub.topics] == ["heart-health"] and sub.partners == []
        assert sub.status == "pending" and suppression.is_suppressed(s, sub.email)
        assert rights.export_data(s, sub, [])["pending_request"]["name"] == "Mallory"
        # The owner's own change (manage link) has the last word over a typed request.
        service.update_preferences(s, sub, _choices(s, catalogue, topics=("mental-health",)))
        service.confirm(s, sub)
        assert sub.name == "Priya Patel" and [t.slug for t in sub.topics] == ["mental-health"]
        assert sub.pending_request is None


def test_confirming_applies_the_request_and_a_new_address_stays_blank_until_then(rt, catalogue):
    with rt.db.transaction() as s:
        sub = service.subscribe(
            s,
            "new@example.org",
            _choices(
                s,
                catalogue,
                topics=("policy",),
                partners=("afiya-trust",),
                name="Amina",
                organisation_type="gp_practice",
                practice_code="A81001",
            ),
        ).subscriber
        assert (sub.name, sub.organisation, sub.practice_code, sub.topics, sub.partners) == ("", "", "", [], [])
        assert service.pending_choices(s, sub).name == "Amina"
        assert sub.id not in {r.id for r in service.recipients(s)}
        # A second request for the same unconfirmed address replaces the first one.
        service.subscribe(s, "new@example.org", _choices(s, catalogue, topics=("heart-health",), name="Amina K"))
        assert service.confirm(s, sub)
        assert (sub.name, sub.organisation_type, sub.practice_code) == ("Amina K", "", "")
        assert [t.slug for t in sub.topics] == ["heart-health"] and sub.partners == []
        assert sub.pending_request is None and rights.export_data(s, sub, [])["pending_request"] is None
        assert sub.id in {r.id for r in service.recipients(s)}


def test_full_lifecycle_is_in_the_ledger_and_recipients_follow_it(rt, catalogue):
    today = date(2026, 12, 1)
    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue)
        assert sub.id in {r.id for r in service.recipients(s, today=today)}
        service.update_preferences(s, sub, _choices(s, catalogue, topics=("policy",)))
        service.pause(s, sub, today + timedelta(days=30), today=today)
        assert sub.id not in {r.id for r in service.recipients(s, today=today)}
        # The pause ends on its date by itself.
        assert sub.id in {r.id for r in service.recipients(s, today=today + timedelta(days=30))}
        service.resume(s, sub)
        service.unsubscribe(s, sub, source="one-click")
        assert sub.id not in {r.id for r in service.recipients(s, today=today)}
        assert suppression.is_suppressed(s, sub.email)
        service.resubscribe(s, sub)
        assert sub.status == "pending" and suppression.is_suppressed(s, sub.email)
        service.confirm(s, sub)
        assert not suppression.is_suppressed(s, sub.email)
        assert sub.id in {r.id for r in service.recipients(s, today=today)}
        assert _ledger(s, sub) == [
            "subscribed",
            "confirmed",
            "changed",
            "paused",
            "resumed",
            "unsubscribed",
            "subscribed",
            "confirmed",
        ]
        first = s.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id)).first()
        assert first.ip == "192.0.2.1" and first.source == "form"
        assert first.wording_version == service.CONSENT_WORDING_VERSION


def test_pause_dates_are_checked(rt, catalogue):
    today = date(2026, 12, 1)
    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue)
        with pytest.raises(InvalidInput, match="after today"):
            service.pause(s, sub, today, today=today)
        with pytest.raises(InvalidInput, match="up to a year"):
            service.pause(s, sub, today + timedelta(days=400), today=today)
        assert sub.paused_until is None


def test_suppressed_address_is_not_a_recipient_even_if_confirmed(rt, catalogue):
    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue)
        suppression.suppress(s, "Priya@RIVERSIDE.example.org", "hard_bounce", "bounce")
        assert sub.id not in {r.id for r in service.recipients(s)}
        assert sub.id not in {r.id for r in service.recipients(s, [sub.id])}


def test_pending_never_receives(rt, catalogue):
    with rt.db.transaction() as s:
        out = service.subscribe(s, "new@example.org", _choices(s, catalogue))
        assert out.subscriber.id not in {r.id for r in service.recipients(s)}


def test_tokens_purpose_expiry_rotation_and_revocation(rt, catalogue):
    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue)
        old = Tokens("old-key")
        token = old.make("manage", sub.id, sub.token_version)
        rotated = Tokens("new-key", ("old-key",))
        assert service.subscriber_from_token(s, rotated, "manage", token) is sub
        with pytest.raises(TokenError) as err:
            service.subscriber_from_token(s, rotated, "unsubscribe", token)
        assert err.value.kind == "wrong-purpose" and "manage a subscription" in err.value.reason
        with pytest.raises(TokenError) as err:
            service.subscriber_from_token(s, Tokens("other-key"), "manage", token)
        assert err.value.kind == "tampered"
        with pytest.raises(TokenError) as err:
            service.subscriber_from_token(s, rotated, "manage", token[:-3] + "AAA")
        assert err.value.kind == "tampered"
        with pytest.raises(TokenError) as err:
            rotated.read("confirm", rotated.make("confirm", sub.id, 1), max_age_seconds=-1)
        assert err.value.kind == "expired"
        service.revoke_links(s, sub)
        with pytest.raises(TokenError) as err:
            service.subscriber_from_token(s, rotated, "manage", token)
        assert err.value.kind == "revoked"
        fresh = rotated.make("manage", sub.id, sub.token_version)
        assert service.subscriber_from_token(s, rotated, "manage", fresh) is sub


def test_export_data_holds_profile_choices_ledger_deliveries(rt, catalogue):
    from mailer.delivery.history import deliveries_of
    from mailer.delivery.models import Delivery
    from mailer.digest.models import Edition

    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue, organisation_type="gp_practice", practice_code="A81001")
        data = rights.export_data(s, sub, deliveries_of(s, sub.id))
        assert data["deliveries"] == []
        ed = Edition(period="2026-10", status="sent", subject="October", intro="", built_at=utcnow())
        s.add(ed)
        s.flush()
        s.add(Delivery(edition_id=ed.id, subscriber_id=sub.id, status="sent", sent_at=utcnow()))
        s.flush()
        data = rights.export_data(s, sub, deliveries_of(s, sub.id))
        assert [(d["edition"], d["status"]) for d in data["deliveries"]] == [("2026-10", "sent")]
    assert data["profile"]["email"] == "priya@riverside.example.org"
    assert data["profile"]["practice_code"] == "A81001"
    assert data["choices"]["topics"] == ["Heart health"]
    assert [e["event"] for e in data["consent_ledger"]] == ["subscribed", "confirmed"]


def test_erase_leaves_only_a_hash_and_blocks_import(rt, catalogue):
    with rt.db.transaction() as s:
        sub = _new_confirmed(s, catalogue)
        service.unsubscribe(s, sub, source="link")
        service.subscribe(s, sub.email, _choices(s, catalogue, name="Priya again"))
        rights.erase(s, sub)
    with rt.db.transaction() as s:
        sub = s.get(Subscriber, sub.id)
        assert "priya" not in sub.email and sub.name == "" and sub.topics == []
        assert sub.pending_request is None
        assert sub.status == "erased"
        assert all(e.ip is None for e in s.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id)))
        assert _ledger(s, sub)[-1] == "erased"
        row = s.scalar(select(Suppression))
        assert row.reason == "erased" and "priya" not in row.email_hash
        assert suppression.is_suppressed(s, "priya@riverside.example.org")
        assert service.find(s, "priya@riverside.example.org") is None


def test_suppression_hash_is_keyed_and_survives_a_key_rotation(rt, settings):
    """The database alone cannot tell whether an address is listed: the stored hash is an
    HMAC, not the SHA-256 anyone can compute. Rotating SECRET_KEY (the old one kept as a
    fallback) or setting SUPPRESSION_KEY later loses no entry."""
    import dataclasses
    import hashlib

    from mailer.db import Database

    address = "Priya@Riverside.example.org"
    with rt.db.transaction() as s:
        suppression.suppress(s, address, "unsubscribed", "link")
    with rt.db.transaction() as s:
        stored = s.scalar(select(Suppression.email_hash))
    guess = hashlib.sha256(b"ertg-suppression:" + address.casefold().encode()).hexdigest()
    assert stored != guess and stored == suppression.email_hash(address, settings.suppression_keys[0])

    rotated = dataclasses.replace(
        settings, secret_key="a-new-secret-key-of-some-length-0123", secret_key_fallbacks=(settings.secret_key,)
    )
    explicit = dataclasses.replace(rotated, suppression_key="an-explicit-suppression-key-0123456")
    assert rotated.suppression_keys[0] != settings.suppression_keys[0] != explicit.suppression_keys[0]
    for later in (rotated, explicit):
        db = Database(settings.database_url, info={"suppression_keys": later.suppression_keys})
        with db.transaction() as s:
            assert suppression.is_suppressed(s, "priya@riverside.example.org")
            assert suppression.suppressed_among(s, [address, "other@example.org"]) == {address}
            assert address in suppression.SuppressedSet(s)
        with db.transaction() as s:  # looked up once, the entry moved to the newest key
            assert s.scalar(select(Suppression.email_hash)) == suppression.current_hash(s, address)
        db.dispose()
    db = Database(settings.database_url)  # a session without keys cannot guess them
    with db.transaction() as s, pytest.raises(RuntimeError, match="suppression keys"):
        suppression.is_suppressed(s, address)
    db.dispose()


def test_purge_removes_only_old_pending_requests(rt, catalogue):
    with rt.db.transaction() as s:
        old = service.subscribe(s, "old@example.org", _choices(s, catalogue)).subscriber
        old.requested_at = utcnow() - timedelta(days=31)
        service.subscribe(s, "recent@example.org", _choices(s, catalogue))
        confirmed = _new_confirmed(s, catalogue)
        confirmed.requested_at = utcnow() - timedelta(days=90)
        returning = _new_confirmed(s, catalogue, email="back@example.org")
        service.unsubscribe(s, returning, source="link")
        service.subscribe(s, "back@example.org", _choices(s, catalogue, topics=("policy",), name="Mallory"))
        returning.requested_at = utcnow() - timedelta(days=31)
    with rt.db.transaction() as s:
        assert purge_unconfirmed(s, 30) == 2
        back = service.find(s, "back@example.org")
        assert back.status == "unsubscribed" and suppression.is_suppressed(s, "back@example.org")
        assert back.pending_request is None and back.name == "Priya Patel"  # the request is dropped
        assert _ledger(s, back)[-1] == "request-expired"
    with rt.db.transaction() as s:
        emails = set(s.scalars(select(Subscriber.email)))
        assert "old@example.org" not in emails
        assert {"recent@example.org", "priya@riverside.example.org"} <= emails
        assert s.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.subscriber_id == old.id)) == 0


def test_scheduler_runs_the_purge_daily(settings):
    from mailer.schedule import jobs

    job = next(j for j in jobs(settings) if j.id == "purge-unconfirmed")
    assert job.actor == "mailer.actors.housekeeping:purge_unconfirmed_job" and "hour='3'" in str(job.trigger)
