"""Partner RSS/Atom feeds: fetch (see :mod:`mailer.content.fetch`), parse with feedparser,
and turn new entries into items through the same checks as the submission form.

feedparser is only handed bytes; it never fetches anything itself. A re-poll never
duplicates an item: each entry is keyed by its id (else its link) within the partner, and
the key is unique in the database. An entry that fails the checks (say a javascript:
link) is skipped and named in the partner's ``feed_error``; the rest still come in.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import date

import feedparser
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.fetch import FetchError, FetchOptions, fetch
from mailer.content.intake import SUMMARY_MAX, TITLE_MAX, ItemDraft, check_draft, store_item
from mailer.content.models import ITEM_KINDS, Item, Partner, Topic
from mailer.content.sanitize import BODY_MAX, clean_html, html_to_text, strip_invisible
from mailer.db import Database, utcnow
from mailer.text import strip_controls
from mailer.validation import InvalidInput

log = logging.getLogger(__name__)

MAX_ENTRIES = 200  # per poll; a feed is a list of recent posts, not an archive
_ENTITY = re.compile(rb"<!\s*ENTITY", re.I)


class FeedError(Exception):
    """The feed was fetched but cannot be used; the message is fit to show an editor."""


@dataclass
class PollResult:
    partner: str
    new_item_ids: list[int] = field(default_factory=list)
    not_modified: bool = False
    skipped: list[str] = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.not_modified:
            return "not modified"
        text = f"{len(self.new_item_ids)} new"
        return text + (f", {len(self.skipped)} skipped" if self.skipped else "")


def parse_feed(body: bytes, content_type: str | None) -> list:
    """feedparser's entries for ``body``. FeedError for a document that is not a feed, or
    one declaring XML entities (the billion-laughs family: refused before parsing)."""
    if _ENTITY.search(body.replace(b"\x00", b"")):
        raise FeedError("the feed declares XML entities, which are refused")
    headers = {"content-type": content_type} if content_type else {}
    # nh3 cleans what we keep; feedparser is told not to, so the original stays as sent.
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=True)
    if not parsed.entries:
        if parsed.bozo:
            raise FeedError(f"not a readable feed: {parsed.bozo_exception}"[:300])
        if not parsed.get("version"):
            raise FeedError("not an RSS or Atom feed")
    return parsed.entries[:MAX_ENTRIES]


def entry_key(entry) -> str | None:
    """``feed:<sha256>`` of the entry's id, else its link; None if it has neither."""
    raw = (entry.get("id") or entry.get("link") or "").strip()
    if not raw:
        return None
    return "feed:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _topic_index(session: Session) -> dict[str, Topic]:
    index: dict[str, Topic] = {}
    for t in session.scalars(select(Topic)):
        index[t.slug.lower()] = t
        index[t.name.lower()] = t
    return index


def _slugish(term: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")


def draft_from_entry(entry, topics: dict[str, Topic]) -> tuple[ItemDraft, str]:
    """The draft for one entry, and its raw HTML body (kept as the partner's original)."""
    title = _shorten(" ".join(strip_invisible(html_to_text(entry.get("title", ""))).split()), TITLE_MAX)
    content = entry.get("content") or []
    body_html = strip_controls(content[0].get("value", "")) if content else ""
    summary_html = entry.get("summary", "") or body_html
    summary = _shorten(html_to_text(summary_html), SUMMARY_MAX) or title
    terms = [(tag.get("term") or "").strip() for tag in entry.get("tags", []) or []]
    chosen, kind = [], "news"
    for term in terms:
        t = topics.get(term.lower()) or topics.get(_slugish(term))
        if t is not None and t.id not in chosen:
            chosen.append(t.id)
        k = _slugish(term).replace("-", "_")
        if k in ITEM_KINDS and k != "event":  # an event needs a date and place a feed lacks
            kind = k
    draft = ItemDraft(title=title, summary=summary, link=(entry.get("link") or "").strip(), kind=kind, topic_ids=chosen)
    return draft, body_html[:BODY_MAX]


def ingest_entries(session: Session, partner: Partner, entries: list, *, today: date) -> PollResult:
    """Store ``entries`` not seen before as ``partner``'s items. Never commits."""
    result = PollResult(partner.slug)
    keys = {entry_key(e) for e in entries} - {None}
    seen = (
        set(session.scalars(select(Item.source_key).where(Item.partner_id == partner.id, Item.source_key.in_(keys))))
        if keys
        else set()
    )
    topics = _topic_index(session)
    for entry in entries:
        key = entry_key(entry)
        if key is None:
            result.skipped.append("an entry has neither id nor link")
            continue
        if key in seen:
            continue
        seen.add(key)
        draft, raw_body = draft_from_entry(entry, topics)
        try:
            checked = check_draft(session, draft, today=today, require_topics=False)
        except InvalidInput as err:
            result.skipped.append(f"{draft.title[:60] or 'untitled'!r}: {err.field} {err.message}")
            continue
        checked.body_markdown, checked.body_html = raw_body, clean_html(raw_body)
        item = store_item(session, partner, checked, today=today, source="feed", source_key=key)
        result.new_item_ids.append(item.id)
    return result


def poll_partner(session: Session, partner: Partner, options: FetchOptions, *, today: date) -> PollResult:
    """Poll one partner's feed and record the outcome on the partner. Never commits.

    Fetch and parse problems are recorded in ``partner.feed_error`` and returned, not
    raised, so one broken feed never stops the others.
    """
    partner.feed_checked_at = utcnow()
    try:
        if not partner.feed_url:
            raise FeedError("the partner has no feed address")
        got = fetch(partner.feed_url, options, etag=partner.feed_etag, last_modified=partner.feed_modified)
        if got.body is None:
            partner.feed_error = None
            return PollResult(partner.slug, not_modified=True)
        entries = parse_feed(got.body, got.content_type)
    except (FetchError, FeedError) as err:
        # The message may quote the server (an HTTP reason phrase, a parser's complaint).
        partner.feed_error = strip_controls(str(err), keep="")[:1000]
        return PollResult(partner.slug, error=partner.feed_error)
    result = ingest_entries(session, partner, entries, today=today)
    partner.feed_etag = strip_controls(got.etag, keep="")[:500] or None
    partner.feed_modified = strip_controls(got.last_modified, keep="")[:100] or None
    partner.feed_error = (
        strip_controls("skipped " + "; ".join(result.skipped), keep="")[:1000] if result.skipped else None
    )
    return result


def poll_feeds(db: Database, options: FetchOptions, *, today: date, slug: str | None = None) -> list[PollResult]:
    """Poll every active partner with a feed (or only ``slug``), one transaction each.

    The edges call it: ``mailer feeds poll`` and the ``poll_feeds`` actor
    (:mod:`mailer.actors.scheduled`), which the scheduler sends every
    ``FEED_POLL_MINUTES``. A partner's items and its feed state
    commit together; an unexpected failure rolls that partner back, is recorded on it in
    a fresh transaction, and the next partner is polled.
    """
    with db.transaction() as s:
        q = select(Partner.id, Partner.slug).where(Partner.active, Partner.feed_url.is_not(None))
        if slug:
            q = select(Partner.id, Partner.slug).where(Partner.slug == slug)
        targets = list(s.execute(q.order_by(Partner.id)))
    results = []
    for partner_id, partner_slug in targets:
        try:
            with db.transaction() as s:
                results.append(poll_partner(s, s.get(Partner, partner_id), options, today=today))
        except Exception as err:  # noqa: BLE001 - one partner's failure must not stop the rest
            log.exception("feed poll failed for %s", partner_slug)
            message = f"internal error while polling: {err.__class__.__name__}"
            with db.transaction() as s:
                p = s.get(Partner, partner_id)
                p.feed_error, p.feed_checked_at = message, utcnow()
            results.append(PollResult(partner_slug, error=message))
    return results
