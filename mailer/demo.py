"""Demo data from the campaign's own account of how organisations take part."""

from __future__ import annotations

import secrets
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import APPROVED, Item, Partner, Topic
from mailer.content.partners import rotate_submit_secret
from mailer.db import utcnow
from mailer.groups.directory import create_group
from mailer.groups.service import add_members
from mailer.staff.accounts import create_user
from mailer.staff.models import StaffUser
from subscribers.models import CONFIRMED, Subscriber
from subscribers.service import record

TOPICS = [
    ("health-inequalities", "Health inequalities"),
    ("heart-health", "Heart health"),
    ("sexual-health", "Sexual health"),
    ("mental-health", "Mental health"),
    ("staff-networks", "BME staff networks"),
    ("equality-practice", "Equality practice and tools"),
    ("pledges", "Pledges and progress"),
    ("policy", "Policy and campaigning"),
]

PARTNERS = [
    ("afiya-trust", "Afiya Trust", "https://www.afiya-trust.org"),
    ("race-equality-foundation", "Race Equality Foundation", "https://raceequalityfoundation.org.uk"),
    ("diverse-minds", "Diverse Minds", "https://www.mind.org.uk"),
    ("naz-project-london", "Naz Project London", "https://www.naz.org.uk"),
    ("british-heart-foundation", "British Heart Foundation", "https://www.bhf.org.uk"),
]

# (partner, kind, title, summary, topics, day of month)
ITEMS = [
    (
        "race-equality-foundation",
        "case_study",
        "Case study: how Bournemouth Health Trust engaged minority ethnic communities",
        "What the trust changed in outreach and consultation, and the difference it made to who "
        "uses its services. Equality leads have been sharing it with senior management teams.",
        ["equality-practice", "health-inequalities"],
        2,
    ),
    (
        "race-equality-foundation",
        "resource",
        "Race equality audit tool for GP practices",
        "A practical tool to audit your practice on race equality, from reception to referrals. "
        "Used by surgeries such as The Peaks GP Practice in Rotherham to focus their pledge.",
        ["equality-practice"],
        3,
    ),
    (
        "afiya-trust",
        "news",
        "Living in the Margins: tell us how spending cuts affect your patients",
        "The Afiya Trust's Living in the Margins initiative is gathering experiences from "
        "practices and trusts dealing with cuts in spending. Surgery managers are invited to write in.",
        ["health-inequalities", "policy"],
        4,
    ),
    (
        "naz-project-london",
        "event",
        "Online group: what works in sexual health services",
        "Join lead staff from hospital trusts to discuss lower satisfaction with sexual health "
        "services among minority ethnic groups, and get advice from Naz Project London.",
        ["sexual-health"],
        12,
    ),
    (
        "british-heart-foundation",
        "call_to_action",
        "Add your support: letter to the Secretary of State on heart disease in Asian communities",
        "Practices are adding their names to a letter asking for more resources to tackle heart "
        "disease in Asian communities. It takes two minutes to sign on behalf of your surgery.",
        ["heart-health", "policy"],
        6,
    ),
    (
        "british-heart-foundation",
        "pledge_update",
        "Pledge update: more Asian patients coming forward for heart screening",
        "The Peaks GP Practice reports on its pledge: more Asian patients have come forward for "
        "health screening for heart conditions since the practice took up BHF support.",
        ["pledges", "heart-health"],
        9,
    ),
    (
        "diverse-minds",
        "news",
        "BME staff networks plan a joint event with Birmingham University",
        "The Heart of Manchester Hospital Trust BME staff network is organising a joint event with "
        "the Birmingham University BME staff network, and wants to hear from other networks.",
        ["staff-networks", "mental-health"],
        10,
    ),
]

SUBSCRIBERS = [
    (
        "equality.lead@heart-of-manchester.example.org",
        "Amina Rahman",
        "Heart of Manchester Hospital Trust",
        ["equality-practice", "sexual-health"],
        ["naz-project-london"],
    ),
    (
        "practice.manager@thepeaks.example.org",
        "David Okafor",
        "The Peaks GP Practice, Rotherham",
        ["heart-health"],
        ["afiya-trust", "race-equality-foundation"],
    ),
    (
        "bme.network@heart-of-manchester.example.org",
        "",
        "Heart of Manchester BME Staff Network",
        ["staff-networks"],
        [],
    ),
]


def seed_demo(session: Session, today: date) -> dict[str, str] | None:
    """Load the demo topics, partners, approved items (dated this month) and confirmed
    subscribers. Returns each partner's new submission secret, or None if already seeded."""
    if session.scalar(select(Topic.id).limit(1)) is not None:
        return None
    topics = {slug: Topic(slug=slug, name=name, position=i) for i, (slug, name) in enumerate(TOPICS)}
    session.add_all(topics.values())
    partners, secrets = {}, {}
    for slug, name, website in PARTNERS:
        p = Partner(slug=slug, name=name, website=website)
        secrets[slug] = rotate_submit_secret(p)
        partners[slug] = p
    session.add_all(partners.values())
    session.flush()
    for partner, kind, title, summary, topic_slugs, day in ITEMS:
        session.add(
            Item(
                partner_id=partners[partner].id,
                kind=kind,
                title=title,
                summary=summary,
                link=f"{partners[partner].website}/",
                status=APPROVED,
                dated=today.replace(day=min(day, today.day)),
                decided_at=utcnow(),
                decided_by="demo",
                topics=[topics[t] for t in topic_slugs],
            )
        )
    for email, name, org, topic_slugs, partner_slugs in SUBSCRIBERS:
        sub = Subscriber(
            email=email,
            name=name,
            organisation=org,
            status=CONFIRMED,
            confirmed_at=utcnow(),
            topics=[topics[t] for t in topic_slugs],
            partners=[partners[p] for p in partner_slugs],
        )
        session.add(sub)
        session.flush()
        record(session, sub, "imported", "admin", None)
    _demo_group(session)
    return secrets


def _demo_group(session: Session) -> None:
    """The campaign's example of a group: BME staff networks sharing what they do."""
    group = create_group(
        session,
        "bme-staff-networks",
        "BME staff networks",
        description=(
            "Hospital and university BME staff networks sharing what they are doing, "
            "planning joint events and asking each other for advice."
        ),
        by="demo",
    )
    add_members(
        session,
        group,
        ["bme.network@heart-of-manchester.example.org"],
        basis="existing-member",
        role="owner",
        by="demo",
    )
    add_members(session, group, ["equality.lead@heart-of-manchester.example.org"], basis="existing-member", by="demo")


DEMO_ADMIN = "demo-admin"


def demo_console_account(session: Session) -> tuple[str, str] | None:
    """A first admin for the console, so a new user of ``./scripts/dev`` can log in: its
    name and a random password (returned once, never stored in clear). None when any
    staff account exists already: the demo never adds a second way in.

    The caller offers this in development only; a server makes its first admin with
    ``mailer users create``.
    """
    if session.scalar(select(StaffUser.id).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(12)
    create_user(session, DEMO_ADMIN, "admin", password, actor="demo")
    return DEMO_ADMIN, password
