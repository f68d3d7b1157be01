"""mailer.digest.cache: one render per edition version, shared by sending and the web faces."""

from __future__ import annotations

import dataclasses

import pytest

import mailer.digest.cache as cache
from mailer.delivery.sending import prepared_for
from mailer.digest import lifecycle
from mailer.digest.cache import PreparedEditions, prepared_editions
from mailer.digest.compose import archive_copy
from mailer.digest.editions import build_edition
from tests.factories import PERIOD, standard_world


@pytest.fixture
def renders(monkeypatch):
    """Counts real renders (a spy around prepare_edition, not a stub)."""
    calls = []
    real = cache.prepare_edition

    def counting(session, edition, settings, *a, **kw):
        calls.append(edition.id)
        return real(session, edition, settings, *a, **kw)

    monkeypatch.setattr(cache, "prepare_edition", counting)
    prepared_editions.clear()
    yield calls
    prepared_editions.clear()


@pytest.fixture
def edition(session):
    standard_world(session)
    ed = build_edition(session, PERIOD)
    session.commit()
    return ed


def test_an_edition_is_rendered_once_for_the_web_and_the_mailing(session, rt, edition, renders):
    web = prepared_editions.get(session, edition, rt.settings)
    assert prepared_editions.get(session, edition, rt.settings) is web
    mailing = prepared_for(session, edition, rt.settings)
    assert prepared_for(session, edition, rt.settings) is mailing
    assert renders == [edition.id]
    # The mailing is the same render with its own headers; the web copy has none of them.
    assert mailing.rendered is web.rendered
    assert b"Feedback-ID: " + PERIOD.encode() in mailing.template._shared
    assert b"Feedback-ID" not in web.template._shared


def test_an_edit_or_a_rebuild_renders_afresh(session, rt, edition, renders):
    before = prepared_editions.get(session, edition, rt.settings)
    lifecycle.edit(session, edition, subject="A new subject", intro="A note from the editor.")
    session.commit()
    edited = prepared_editions.get(session, edition, rt.settings)
    assert edited is not before and edited.subject == "A new subject"
    assert "A note from the editor." in archive_copy(edited)[0]
    assert "A note from the editor." not in archive_copy(before)[0]
    mailing = prepared_for(session, edition, rt.settings)
    assert mailing.subject == "A new subject" and mailing.rendered is edited.rendered

    rebuilt = build_edition(session, PERIOD)
    session.commit()
    assert prepared_editions.get(session, rebuilt, rt.settings) is not edited
    assert renders == [edition.id] * 3


def test_the_cache_keeps_at_most_maxsize_renders_least_recently_used_first(session, rt, edition, renders):
    small = PreparedEditions(maxsize=2)
    elsewhere = dataclasses.replace(rt.settings, base_url="https://elsewhere.example.org")
    third = dataclasses.replace(rt.settings, postal_address="1 Other Street, London")
    a = small.get(session, edition, rt.settings)
    b = small.get(session, edition, elsewhere)
    assert "https://elsewhere.example.org" in archive_copy(b)[0]
    assert "https://elsewhere.example.org" not in archive_copy(a)[0]
    assert small.get(session, edition, rt.settings) is a  # now the most recently used
    small.get(session, edition, third)  # evicts b, not a
    assert len(small) == 2 and small.get(session, edition, rt.settings) is a
    assert small.get(session, edition, elsewhere) is not b
    assert len(renders) == 4
