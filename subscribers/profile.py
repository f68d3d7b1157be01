"""What a subscriber tells us, checked: profile fields and choices (the address is
:func:`mailer.validation.email_address`'s).

The "no topic chosen" rule lives here: no topics means only the items of the partners
followed; neither a topic nor a partner is refused. Nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.validation import InvalidInput, clean_text
from subscribers.models import ORGANISATION_TYPES

NO_CHOICE_MESSAGE = "Choose at least one topic or partner."
NO_TOPIC_RULE = (
    "If you choose no topics, you receive only items from the partners you follow. "
    "Choose at least one topic or partner."
)
MAX_PAUSE_DAYS = 366
ORGANISATION_TYPE_VALUES = frozenset(v for v, _ in ORGANISATION_TYPES)
# NHS ODS codes: a GP practice is a letter and five digits (A81001); other organisations
# have 3 to 6 letters and digits (trusts: RXX or RXX01).
_GP_CODE = re.compile(r"[A-Z][0-9]{5}")
_ODS_CODE = re.compile(r"[A-Z0-9]{3,6}")


def clean_organisation_type(value: str | None) -> str:
    value = (value or "").strip()
    if value and value not in ORGANISATION_TYPE_VALUES:
        raise InvalidInput("organisation_type", "Choose one of the organisation types listed.")
    return value


def clean_practice_code(value: str | None, organisation_type: str) -> str:
    """An upper-cased ODS code, or "" if none was given."""
    code = clean_text("practice_code", value, 10).replace(" ", "").upper()
    if not code:
        return ""
    pattern = _GP_CODE if organisation_type == "gp_practice" else _ODS_CODE
    if not pattern.fullmatch(code):
        raise InvalidInput(
            "practice_code",
            "A GP practice code is a letter and five digits, like A81001."
            if organisation_type == "gp_practice"
            else "An organisation code is 3 to 6 letters and digits, like RW3.",
        )
    return code


@dataclass(frozen=True)
class Choices:
    """Validated profile fields and choices from a subscribe or preferences form."""

    name: str
    organisation: str
    topics: list[Topic]
    partners: list[Partner]
    organisation_type: str = ""
    practice_code: str = ""


def validate_choices(
    session: Session,
    name: str,
    organisation: str,
    topic_ids: Iterable[int],
    partner_ids: Iterable[int],
    organisation_type: str | None = "",
    practice_code: str | None = "",
) -> Choices:
    """Resolve ids to rows; unknown ids and an empty choice are :class:`InvalidInput`."""
    topic_ids, partner_ids = set(topic_ids), set(partner_ids)
    topics = list(session.scalars(select(Topic).where(Topic.id.in_(topic_ids)))) if topic_ids else []
    partners = (
        list(session.scalars(select(Partner).where(Partner.id.in_(partner_ids), Partner.active))) if partner_ids else []
    )
    if len(topics) != len(topic_ids):
        raise InvalidInput("topics", "One of the topics chosen does not exist.")
    if len(partners) != len(partner_ids):
        raise InvalidInput("partners", "One of the partners chosen does not exist.")
    if not topics and not partners:
        raise InvalidInput("topics", NO_CHOICE_MESSAGE)
    org_type = clean_organisation_type(organisation_type)
    return Choices(
        name=clean_text("name", name, 120),
        organisation=clean_text("organisation", organisation, 200),
        topics=topics,
        partners=partners,
        organisation_type=org_type,
        practice_code=clean_practice_code(practice_code, org_type),
    )


def request_data(choices: Choices) -> dict:
    """``choices`` as JSON-ready data, to keep as a subscriber's pending request."""
    return {
        "name": choices.name,
        "organisation": choices.organisation,
        "organisation_type": choices.organisation_type,
        "practice_code": choices.practice_code,
        "topics": sorted(t.id for t in choices.topics),
        "partners": sorted(p.id for p in choices.partners),
    }


def choices_from_request(session: Session, data: dict) -> Choices:
    """The :class:`Choices` a stored request asked for (checked when it was made).

    Topics deleted and partners deactivated since then are left out, so the result may
    hold no topic and no partner.
    """
    topic_ids = [i for i in data.get("topics", []) if isinstance(i, int)]
    partner_ids = [i for i in data.get("partners", []) if isinstance(i, int)]
    topics = list(session.scalars(select(Topic).where(Topic.id.in_(topic_ids)))) if topic_ids else []
    partners = (
        list(session.scalars(select(Partner).where(Partner.id.in_(partner_ids), Partner.active))) if partner_ids else []
    )
    return Choices(
        name=str(data.get("name", "")),
        organisation=str(data.get("organisation", "")),
        topics=sorted(topics, key=lambda t: (t.position, t.id)),
        partners=sorted(partners, key=lambda p: p.name),
        organisation_type=str(data.get("organisation_type", "")),
        practice_code=str(data.get("practice_code", "")),
    )
