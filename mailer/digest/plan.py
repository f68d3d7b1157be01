"""The shape of an edition, and what each subscriber gets from it.

Items are ordered once into sections (one per topic, by the item's first topic). Each item
gets a bit; every topic and partner gets the mask of its items. A subscriber's digest is
then one OR over their choices: exact, and cheap enough for 100,000 subscribers.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable, Sequence

from mailer.content.models import ITEM_KINDS, Item, Partner, Topic


@dataclass(frozen=True)
class PlannedItem:
    bit: int
    id: int
    title: str
    summary: str
    link: str
    kind: str
    kind_label: str
    partner_id: int
    partner_name: str
    dated: date

    @property
    def mask(self) -> int:
        return 1 << self.bit


@dataclass(frozen=True)
class Section:
    number: int
    topic_id: int
    name: str
    items: tuple[PlannedItem, ...]
    mask: int


@dataclass(frozen=True)
class DigestPlan:
    sections: tuple[Section, ...]
    topic_masks: dict[int, int]
    partner_masks: dict[int, int]
    topic_names: dict[int, str]
    partner_names: dict[int, str]

    @property
    def items(self) -> list[PlannedItem]:
        return [i for s in self.sections for i in s.items]

    def mask_for(self, topic_ids: Iterable[int], partner_ids: Iterable[int]) -> int:
        """Bits of the items matching any chosen topic or coming from any followed partner."""
        m = 0
        for t in topic_ids:
            m |= self.topic_masks.get(t, 0)
        for p in partner_ids:
            m |= self.partner_masks.get(p, 0)
        return m

    def why(self, topic_ids: Iterable[int], partner_ids: Iterable[int]) -> str:
        """"Sexual health and Naz Project London": the choices that explain this email."""
        chosen_t, chosen_p = set(topic_ids), set(partner_ids)
        names = [n for t, n in self.topic_names.items() if t in chosen_t]
        names += sorted(n for p, n in self.partner_names.items() if p in chosen_p)
        if len(names) <= 1:
            return "".join(names)
        return ", ".join(names[:-1]) + " and " + names[-1]


def plan_digest(items: Sequence[Item], topics: Sequence[Topic], partners: Sequence[Partner]) -> DigestPlan:
    """Order ``items`` into topic sections and index them for selection."""
    topic_order = sorted(topics, key=lambda t: (t.position, t.id))
    by_topic: dict[int, list[Item]] = {t.id: [] for t in topic_order}
    for item in items:
        if item.topics:
            first = min(item.topics, key=lambda t: (t.position, t.id))
            by_topic[first.id].append(item)
    sections, topic_masks, partner_masks, bit = [], {}, {}, 0
    for topic in topic_order:
        members = sorted(by_topic[topic.id], key=lambda i: (i.kind == "event", i.dated, i.id))
        if not members:
            continue
        planned = []
        for item in members:
            p = PlannedItem(bit, item.id, item.title, item.summary, item.link, item.kind,
                            ITEM_KINDS.get(item.kind, item.kind), item.partner_id, item.partner.name,
                            item.dated)
            planned.append(p)
            for t in item.topics:
                topic_masks[t.id] = topic_masks.get(t.id, 0) | p.mask
            partner_masks[item.partner_id] = partner_masks.get(item.partner_id, 0) | p.mask
            bit += 1
        mask = 0
        for p in planned:
            mask |= p.mask
        sections.append(Section(len(sections), topic.id, topic.name, tuple(planned), mask))
    return DigestPlan(
        sections=tuple(sections),
        topic_masks=topic_masks,
        partner_masks=partner_masks,
        topic_names={t.id: t.name for t in topic_order},
        partner_names={p.id: p.name for p in partners},
    )
