"""Arranging partner content for tests."""

from __future__ import annotations

from sqlalchemy import select

from mailer.content.models import Partner, Topic
from mailer.content.partners import issue_api_token, rotate_submit_secret


def make_partner(rt, slug="naz-project-london", *, trusted=False, feed_url=None, contact="office@partner.example.org"):
    """A partner with topics in place and a registered contact (where notices go);
    returns (partner_id, submit secret, api token)."""
    with rt.db.transaction() as s:
        if s.scalar(select(Topic.id).limit(1)) is None:
            s.add_all(
                [
                    Topic(slug="sexual-health", name="Sexual health", position=0),
                    Topic(slug="heart-health", name="Heart health", position=1),
                    Topic(slug="mental-health", name="Mental health", position=2),
                ]
            )
        p = Partner(
            slug=slug,
            name=slug.replace("-", " ").title(),
            website="https://example.org",
            trusted=trusted,
            feed_url=feed_url,
            contact_email=contact,
            description="",
        )
        s.add(p)
        s.flush()
        secret = rotate_submit_secret(p)
        _, token = issue_api_token(s, p, "tests")
        return p.id, secret, token


def topic_ids(session) -> dict[str, int]:
    return {t.slug: t.id for t in session.scalars(select(Topic))}
