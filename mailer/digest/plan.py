"""The shape of an edition, and what each subscriber gets from it.

Sections, in order: the editor's featured item, one section per topic (newest first, or in
the editor's order), an "Other news" section for items without a topic, "What networks are
doing" (threads groups share, see :mod:`mailer.groups.network`; each reaches the readers
who chose its group's topic), then every event in date order.

An item tagged with several topics is *placed* in each of their sections, and every
placement gets a bit. A subscriber's mask holds exactly one placement per item they get:
under the first of the item's topics that they chose (so a "Sexual health" reader finds
it under "Sexual health", not under a heading they never picked), or under its first topic
when they get it through a partner they follow. So every item appears once, in a section
the reader recognises, and a section shows only when its mask meets theirs.

The mask depends only on the *set* of choices, and 100,000 subscribers hold at most a few
thousand distinct sets, so :meth:`DigestPlan.mask_for` caches per set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from mailer.content.models import ITEM_KINDS, Item, Partner, Topic

FEATURED, TOPIC, EVENTS, NETWORKS = "featured", "topic", "events", "networks"
FEATURED_TITLE = "Featured this month"
EVENTS_TITLE = "Events and dates"
OTHER_TITLE = "Other news"
NETWORKS_TITLE = "What networks are doing"
NETWORK_LABEL = "Group thread"


@dataclass(frozen=True)
class PlannedItem:
    """One placement of an item in a section."""

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
    topic_id: int | None = None  # the section's topic, for topic sections
    event_at: datetime | None = None  # events: when it starts (local time; 00:00 = no time given)
    event_place: str | None = None
    image_url: str | None = None
    image_alt: str | None = None

    @property
    def mask(self) -> int:
        return 1 << self.bit

    @property
    def event_when(self) -> str:
        """ "Tue 8 Dec 2026, 18:30" (the time left out when none was given)."""
        when = self.event_at or datetime.combine(self.dated, datetime.min.time())
        text = when.strftime("%a %-d %b %Y")
        return text if (when.hour, when.minute) == (0, 0) else f"{text}, {when:%H:%M}"


@dataclass(frozen=True)
class Section:
    number: int
    topic_id: int | None  # None for the featured, other-news and events sections
    name: str
    items: tuple[PlannedItem, ...]
    mask: int
    kind: str = TOPIC

    @property
    def anchor(self) -> str:
        return f"section-{self.number}"


@dataclass(frozen=True)
class _Entry:
    """An item for selection: what it matches and where it can be placed."""

    topic_ids: frozenset[int]
    partner_id: int
    placements: tuple[tuple[int | None, int], ...]  # (section topic or None, bit), in order


@dataclass
class DigestPlan:
    sections: tuple[Section, ...]
    topic_names: dict[int, str]
    partner_names: dict[int, str]
    entries: tuple[_Entry, ...]
    _cache: dict = field(default_factory=dict, repr=False)
    _capped: dict = field(default_factory=dict, repr=False)

    @property
    def placements(self) -> list[PlannedItem]:
        return [i for s in self.sections for i in s.items]

    @property
    def items(self) -> list[PlannedItem]:
        """Each item once (its first placement), in digest order."""
        seen, out = set(), []
        for p in self.placements:
            if p.id not in seen:
                seen.add(p.id)
                out.append(p)
        return out

    @property
    def bits(self) -> int:
        return len(self.placements)

    def mask_for(self, topic_ids: Iterable[int], partner_ids: Iterable[int]) -> int:
        """Bits of the placements this subscriber reads: each item that matches any chosen
        topic or comes from any followed partner, once. 0 means nothing to read."""
        key = (frozenset(topic_ids), frozenset(partner_ids))
        mask = self._cache.get(key)
        if mask is None:
            chosen_t, chosen_p = key
            mask = 0
            for e in self.entries:
                if e.partner_id in chosen_p or not e.topic_ids.isdisjoint(chosen_t):
                    bit = next((b for t, b in e.placements if t in chosen_t), e.placements[0][1])
                    mask |= 1 << bit
            if len(self._cache) < 100_000:
                self._cache[key] = mask
        return mask

    def capped(self, mask: int, per_section: int) -> tuple[int, tuple[tuple[int, int], ...]]:
        """``mask`` with at most ``per_section`` placements in each section (the first
        ones, in digest order), and (section number, placements left out) for each
        section that lost some. Remembered per mask, like :meth:`mask_for`."""
        hit = self._capped.get(mask)
        if hit is None:
            shown, more = mask, []
            for section in self.sections:
                mine = mask & section.mask
                over = mine.bit_count() - per_section
                if over > 0:
                    keep, rest = 0, mine
                    for _ in range(per_section):
                        lowest = rest & -rest
                        keep, rest = keep | lowest, rest ^ lowest
                    shown = (shown & ~mine) | keep
                    more.append((section.number, over))
            hit = (shown, tuple(more))
            if len(self._capped) < 100_000:
                self._capped[mask] = hit
        return hit

    def why(self, topic_ids: Iterable[int], partner_ids: Iterable[int]) -> str:
        """ "Sexual health and Naz Project London": the choices that explain this email."""
        chosen_t, chosen_p = set(topic_ids), set(partner_ids)
        names = [n for t, n in self.topic_names.items() if t in chosen_t]
        names += sorted(n for p, n in self.partner_names.items() if p in chosen_p)
        if len(names) <= 1:
            return "".join(names)
        return ", ".join(names[:-1]) + " and " + names[-1]


def ordered(items: Iterable[Item], item_order: Sequence[int] | None) -> list[Item]:
    """``items`` in the order the topic sections use: those in the editor's ``item_order``
    first, in that order; the rest newest first. Every section is this order restricted
    to its items."""
    return _ordered(items, {item_id: n for n, item_id in enumerate(item_order or ())})


def _ordered(items: Iterable[Item], rank: dict[int, int]) -> list[Item]:
    return sorted(items, key=lambda i: (0, rank[i.id], 0, 0) if i.id in rank else (1, 0, -i.dated.toordinal(), i.id))


def plan_digest(
    items: Sequence[Item],
    topics: Sequence[Topic],
    partners: Sequence[Partner],
    featured_item_id: int | None = None,
    item_order: Sequence[int] | None = None,
    networks: Sequence[dict] | None = None,
) -> DigestPlan:
    """Order ``items`` into sections and index them for selection.

    ``item_order`` (item ids) is the editor's order within the topic and "Other news"
    sections: listed items come first in that order, the others follow newest first.

    Items without a topic reach only the followers of their partner; the featured item
    (if it is among ``items``) leads the digest of everyone whose choices match it.
    """
    topic_order = sorted(topics, key=lambda t: (t.position, t.id))
    featured = [i for i in items if i.id == featured_item_id]
    rest = [i for i in items if i.id != featured_item_id]
    events = sorted(
        (i for i in rest if i.kind == "event"),
        key=lambda i: (i.event_starts_at or datetime.combine(i.dated, datetime.min.time()), i.id),
    )
    others = [i for i in rest if i.kind != "event"]
    rank = {item_id: n for n, item_id in enumerate(item_order or ())}
    groups: list[tuple[str, int | None, str, list[Item]]] = [(FEATURED, None, FEATURED_TITLE, featured)]
    for topic in topic_order:
        groups.append(
            (
                TOPIC,
                topic.id,
                topic.name,
                _ordered((i for i in others if any(t.id == topic.id for t in i.topics)), rank),
            )
        )
    groups.append((TOPIC, None, OTHER_TITLE, _ordered((i for i in others if not i.topics), rank)))
    groups.append((NETWORKS, None, NETWORKS_TITLE, []))
    groups.append((EVENTS, None, EVENTS_TITLE, events))
    known_topics = {t.id for t in topics}
    threads = [t for t in networks or () if t.get("topic_id") in known_topics]

    sections, bit = [], 0
    placements: dict[int, list[tuple[int | None, int]]] = {}
    network_entries: list[_Entry] = []
    for kind, topic_id, name, members in groups:
        if kind == NETWORKS:
            if threads:
                planned = []
                for n, t in enumerate(threads):
                    planned.append(_network_item(bit, n, t, threads_dated(items)))
                    network_entries.append(_Entry(frozenset({t["topic_id"]}), 0, ((t["topic_id"], bit),)))
                    bit += 1
                mask = sum(p.mask for p in planned)
                sections.append(Section(len(sections), None, name, tuple(planned), mask, kind))
            continue
        if not members:
            continue
        planned = []
        for item in members:
            planned.append(
                PlannedItem(
                    bit,
                    item.id,
                    item.title,
                    item.summary,
                    item.link,
                    item.kind,
                    ITEM_KINDS.get(item.kind, item.kind),
                    item.partner_id,
                    item.partner.name,
                    item.dated,
                    topic_id,
                    item.event_starts_at,
                    item.event_place,
                    item.image_url if item.image_alt else None,
                    item.image_alt,
                )
            )
            placements.setdefault(item.id, []).append((topic_id, bit))
            bit += 1
        mask = 0
        for p in planned:
            mask |= p.mask
        sections.append(Section(len(sections), topic_id, name, tuple(planned), mask, kind))
    entries = tuple(
        _Entry(frozenset(t.id for t in item.topics), item.partner_id, tuple(placements[item.id])) for item in items
    ) + tuple(network_entries)
    return DigestPlan(
        sections=tuple(sections),
        topic_names={t.id: t.name for t in topic_order},
        partner_names={p.id: p.name for p in partners},
        entries=entries,
    )


def threads_dated(items: Sequence[Item]) -> date:
    """The date shown with network threads (none is: they carry the edition's)."""
    return max((i.dated for i in items), default=date.today())


def _network_item(bit: int, n: int, thread: dict, dated: date) -> PlannedItem:
    """A shared thread as a placement: its id is negative (never an item's), partner 0
    (nobody follows it: it reaches readers through its topic only)."""
    replies = thread["replies"]
    return PlannedItem(
        bit,
        -(n + 1),
        thread["subject"],
        f"{replies} repl{'y' if replies == 1 else 'ies'}",
        thread["url"],
        NETWORKS,
        NETWORK_LABEL,
        0,
        thread["group"],
        dated,
        thread["topic_id"],
    )
