"""Operator commands for partners, their items and feeds (attached to ``mailer``'s groups).

Shells only: each opens a transaction, calls :mod:`mailer.content`, prints the outcome,
and enqueues partner notices after the commit.
"""
from __future__ import annotations

import json
from datetime import date

import click
from sqlalchemy import select

from mailer import runtime
from mailer.cli import _fail, items, main, partners
from mailer.text import strip_controls
from mailer.validation import InvalidInput


def notify_decisions(item_ids) -> None:
    """Queue the decision email for each decided item whose contact has not heard yet."""
    from mailer.content.models import Item
    from mailer.content.moderation import needs_decision_notice
    from mailer.content.notices import decision_kind
    from mailer.delivery.partner_actors import send_partner_notice
    from mailer.queue import enqueue

    with runtime.current().db.transaction() as s:
        owed = [(decision_kind(i), i.id) for i in s.scalars(select(Item).where(Item.id.in_(list(item_ids))))
                if needs_decision_notice(i)]
    for kind, item_id in owed:
        enqueue(send_partner_notice, kind, item_id)
    if owed:
        from mailer.broker import drain, embedded

        if embedded():
            drain()  # this process is the worker: send before the command exits


def _partner(s, slug):
    from mailer.content.partners import partner_by_slug

    p = partner_by_slug(s, slug)
    if p is None:
        _fail(f"No partner with slug {slug!r}.")
    return p


_partner_options = [
    click.option("--name"), click.option("--website"), click.option("--description"),
    click.option("--logo-url"), click.option("--contact-email"),
    click.option("--feed-url", help="RSS or Atom address; empty to remove"),
    click.option("--trusted/--not-trusted", default=None, help="trusted partners skip moderation"),
    click.option("--active/--inactive", default=None),
]


def _with_partner_options(f):
    for opt in reversed(_partner_options):
        f = opt(f)
    return f


def _fields(kw):
    from mailer.content.partners import PartnerFields

    return PartnerFields(**{k: kw.get(k) for k in ("name", "website", "description", "logo_url",
                                                    "contact_email", "feed_url", "trusted", "active")})


@partners.command("add")
@click.argument("slug")
@_with_partner_options
def partners_add(slug, **kw):
    """Add a partner and print its submission link."""
    from mailer.content.partners import create_partner, rotate_submit_secret

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            p = create_partner(s, slug, _fields(kw))
        except InvalidInput as err:
            _fail(str(err))
        secret = rotate_submit_secret(p)
    click.echo(f"Added {slug}. Submission link (shown once): {rt.settings.base_url}/submit/{secret}")


@partners.command("edit")
@click.argument("slug")
@_with_partner_options
def partners_edit(slug, **kw):
    """Change a partner's details (only the options given)."""
    from mailer.content.partners import apply_partner_fields

    with runtime.current().db.transaction() as s:
        try:
            apply_partner_fields(_partner(s, slug), _fields(kw))
        except InvalidInput as err:
            _fail(str(err))
    click.echo(f"Updated {slug}.")


@partners.command("list")
def partners_list():
    """Partners, with their flags and the state of their feed."""
    from mailer.content.models import Partner

    with runtime.current().db.transaction() as s:
        for p in s.scalars(select(Partner).order_by(Partner.slug)):
            flags = ",".join(f for f, on in (("inactive", not p.active), ("trusted", p.trusted),
                                            ("no-link", not p.submit_token_hash)) if on) or "-"
            feed = "no feed" if not p.feed_url else (f"feed ERROR: {p.feed_error}" if p.feed_error
                                                     else f"feed ok (checked {p.feed_checked_at or 'never'})")
            click.echo(strip_controls(f"{p.slug:28} {flags:18} {feed}", keep=""))


@partners.command("revoke-link")
@click.argument("slug")
def partners_revoke_link(slug):
    """Switch a partner's submission link off (API tokens keep working)."""
    from mailer.content.partners import revoke_submit_secret

    with runtime.current().db.transaction() as s:
        revoke_submit_secret(_partner(s, slug))
    click.echo(f"The submission link of {slug} no longer works; `mailer partners link {slug}` issues a new one.")


@partners.group("token")
def token():
    """API tokens (independent of the submission link)."""


@token.command("issue")
@click.argument("slug")
@click.option("--label", default="", help="what the token is for")
def token_issue(slug, label):
    from mailer.content.partners import issue_api_token

    with runtime.current().db.transaction() as s:
        try:
            row, secret = issue_api_token(s, _partner(s, slug), label)
        except InvalidInput as err:
            _fail(str(err))
        token_id = row.id
    click.echo(f"Token {token_id} for {slug} (shown once; send as 'Authorization: Bearer ...'):\n{secret}")


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id):
    from mailer.content.partners import revoke_api_token

    with runtime.current().db.transaction() as s:
        if revoke_api_token(s, token_id) is None:
            _fail(f"There is no token {token_id}.")
    click.echo(f"Token {token_id} revoked.")


@token.command("list")
@click.argument("slug")
def token_list(slug):
    from mailer.content.models import ApiToken

    with runtime.current().db.transaction() as s:
        p = _partner(s, slug)
        for t in s.scalars(select(ApiToken).where(ApiToken.partner_id == p.id).order_by(ApiToken.id)):
            state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
            click.echo(strip_controls(f"{t.id:5}  {t.prefix}…  {state:18} last used {t.last_used_at or 'never'}  {t.label}", keep=""))


# --- items ------------------------------------------------------------------------------

@items.command("show")
@click.argument("item_id", type=int)
def items_show(item_id):
    """An item in full, with the partner's original and the moderation log."""
    from mailer.content.models import Item
    from mailer.content.moderation import original_of

    with runtime.current().db.transaction() as s:
        i = s.get(Item, item_id)
        if i is None:
            _fail(f"There is no item {item_id}.")
        click.echo(strip_controls(f"#{i.id} {i.status}{' FEATURED' if i.featured else ''} · {i.kind} · {i.partner.name} · via {i.source}", keep=""))
        for label, value in (("title", i.title), ("summary", i.summary), ("link", i.link),
                             ("topics", ", ".join(t.slug for t in i.topics) or "(none: give one before approving)"),
                             ("image", f"{i.image_url} [{i.image_alt}]" if i.image_url else None),
                             ("event", f"{i.event_starts_at} at {i.event_place}" if i.event_starts_at else None),
                             ("window", f"{i.publish_from or '…'} to {i.publish_until or '…'}"
                              if i.publish_from or i.publish_until else None),
                             ("contact", i.contact_email), ("body", i.body_markdown or None)):
            if value:
                click.echo(strip_controls(f"  {label:8} {value}"))
        if i.original:
            click.echo(strip_controls("  partner's original: " + json.dumps(original_of(i), ensure_ascii=False)))
        for e in i.events:
            click.echo(strip_controls(f"  {e.at:%Y-%m-%d %H:%M} {e.action:10} by {e.actor}" + (f": {e.reason}" if e.reason else "")))


@items.command("edit")
@click.argument("item_id", type=int)
@click.option("--title")
@click.option("--summary")
@click.option("--link")
@click.option("--kind")
@click.option("--body")
@click.option("--topic", "topics", multiple=True, help="topic slug; repeat for several (replaces the topics)")
@click.option("--publish-from")
@click.option("--publish-until")
@click.option("--note", default="", help="why (kept in the log)")
@click.option("--editor", default="cli", show_default=True)
def items_edit(item_id, topics, note, editor, **changes):
    """Edit a submitted item before approving it; the partner's original is kept."""
    from dataclasses import replace

    from mailer.content.models import Item, Topic
    from mailer.content.moderation import ModerationError, draft_of, edit

    with runtime.current().db.transaction() as s:
        item = s.get(Item, item_id)
        if item is None:
            _fail(f"There is no item {item_id}.")
        new = {k: v for k, v in changes.items() if v is not None}
        if "body" in new:
            new["body"] = new["body"].replace("\\n", "\n")
        if topics:
            found = dict(s.execute(select(Topic.slug, Topic.id).where(Topic.slug.in_(topics))).all())
            missing = [t for t in topics if t not in found]
            if missing:
                _fail(f"No topic {missing[0]!r}.")
            new["topic_ids"] = list(found.values())
        try:
            edit(s, item_id, editor, replace(draft_of(item), **new), today=date.today(), note=note)
        except (InvalidInput, ModerationError) as err:
            _fail(str(err))
    click.echo(f"Edited {item_id}.")


@items.command("feature")
@click.argument("item_id", type=int)
@click.option("--off", is_flag=True, help="remove the featured mark")
@click.option("--editor", default="cli", show_default=True)
def items_feature(item_id, off, editor):
    """Mark an item as featured (or not)."""
    from mailer.content.moderation import ModerationError, set_featured

    with runtime.current().db.transaction() as s:
        try:
            set_featured(s, item_id, editor, not off)
        except ModerationError as err:
            _fail(str(err))
    click.echo(f"Item {item_id} {'is no longer' if off else 'is'} featured.")


@items.command("withdraw")
@click.argument("item_id", type=int)
@click.option("--reason", default="")
@click.option("--editor", default="cli", show_default=True)
def items_withdraw(item_id, reason, editor):
    """Take an approved item back before it is sent."""
    from mailer.content.moderation import ModerationError, withdraw

    with runtime.current().db.transaction() as s:
        try:
            withdraw(s, item_id, editor, reason)
        except ModerationError as err:
            _fail(str(err))
    click.echo(f"Withdrew {item_id}.")


# --- feeds ------------------------------------------------------------------------------

@main.group()
def feeds():
    """Partner RSS/Atom feeds."""


@feeds.command("poll")
@click.argument("slug", required=False)
def feeds_poll(slug):
    """Poll every partner's feed (or only SLUG's) once; new entries arrive as items."""
    from mailer.content.feeds import poll_feeds
    from mailer.content.fetch import FetchOptions

    rt = runtime.current()
    st = rt.settings
    options = FetchOptions(timeout=st.feed_timeout, max_bytes=st.feed_max_bytes,
                           allow_private=st.feed_allow_private)
    results = poll_feeds(rt.db, options, today=date.today(), slug=slug)
    if slug and not results:
        _fail(f"No partner with slug {slug!r}.")
    for r in results:
        click.echo(strip_controls(f"{r.partner:28} {r.describe()}", keep=""))
    if slug and results[0].error:
        raise SystemExit(1)  # the one feed asked for failed; with all feeds, errors are per partner
