"""``mailer items``: partner items and their moderation.

Shells over :mod:`mailer.content.moderation`: each opens a transaction, calls the domain,
prints the outcome, and enqueues partner notices after the commit.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import click

from mailer import runtime
from mailer.cli._common import fail
from mailer.text import strip_controls
from mailer.validation import InvalidInput


@click.group("items")
def items() -> None:
    """Partner items and moderation."""


def _audit(s, action: str, item_id: int, before: dict | None, after: dict | None, editor: str) -> None:
    """Record a moderation command in the console's audit log, as ``cli:<os user>`` (the
    ``--editor`` name, which anyone can type, goes with the entry)."""
    # loaded when the command runs, so `mailer --help` stays fast
    import getpass

    from mailer.staff import audit

    try:
        actor = f"cli:{getpass.getuser()}"
    except Exception:  # no user name in the environment or the password database
        actor = "cli:unknown"
    audit.record(s, actor, action, ("items", item_id), before=before, after={**(after or {}), "editor": editor})


def notify_decisions(item_ids) -> None:
    """Queue the decision email for each decided item whose contact has not heard yet."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.actors.partners import send_partner_notice
    from mailer.content.notices import decisions_owed

    rt = runtime.current()
    with rt.db.transaction() as s:
        owed = decisions_owed(s, item_ids)
    for kind, item_id in owed:
        rt.queue.send(send_partner_notice, kind, item_id)
    if owed and rt.queue.embedded:
        rt.queue.drain()  # this process is the worker: send before the command exits


@items.command("list")
@click.option("--status", default=None, help="submitted, approved, rejected or withdrawn")
def items_list(status: str | None) -> None:
    """Items (all, or those with --status), oldest first."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.moderation import list_items

    with runtime.current().db.transaction() as s:
        for item in list_items(s, status):
            click.echo(
                strip_controls(
                    f"{item.id:5}  {item.status:9}  {item.dated}  {item.partner.name[:24]:24}  {item.title[:60]}",
                    keep="",
                )
            )


@items.command("show")
@click.argument("item_id", type=int)
def items_show(item_id):
    """An item in full, with the partner's original and the moderation log."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.moderation import ModerationError, get_item, original_of

    with runtime.current().db.transaction() as s:
        try:
            i = get_item(s, item_id)
        except ModerationError as err:
            fail(str(err))
        click.echo(
            strip_controls(
                f"#{i.id} {i.status}{' FEATURED' if i.featured else ''} · {i.kind} · {i.partner.name} · via {i.source}",
                keep="",
            )
        )
        for label, value in (
            ("title", i.title),
            ("summary", i.summary),
            ("link", i.link),
            ("topics", ", ".join(t.slug for t in i.topics) or "(none: give one before approving)"),
            ("image", f"{i.image_url} [{i.image_alt}]" if i.image_url else None),
            ("event", f"{i.event_starts_at} at {i.event_place}" if i.event_starts_at else None),
            (
                "window",
                f"{i.publish_from or '…'} to {i.publish_until or '…'}" if i.publish_from or i.publish_until else None,
            ),
            ("contact", i.contact_email),
            ("body", i.body_markdown or None),
        ):
            if value:
                click.echo(strip_controls(f"  {label:8} {value}"))
        if i.original:
            click.echo(strip_controls("  partner's original: " + json.dumps(original_of(i), ensure_ascii=False)))
        for e in i.events:
            click.echo(
                strip_controls(
                    f"  {e.at:%Y-%m-%d %H:%M} {e.action:10} by {e.actor}" + (f": {e.reason}" if e.reason else "")
                )
            )


@items.command("approve")
@click.argument("item_ids", nargs=-1, type=int, required=True)
@click.option("--editor", default="cli", show_default=True)
def items_approve(item_ids: tuple[int, ...], editor: str) -> None:
    """Approve submitted items so the next edition can carry them; tells each partner."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.moderation import ModerationError, approve, get_item

    with runtime.current().db.transaction() as s:
        try:
            for item_id in item_ids:
                was = get_item(s, item_id).status
                approve(s, item_id, editor)
                if was != "approved":
                    _audit(s, "item.approve", item_id, {"status": was}, {"status": "approved"}, editor)
        except ModerationError as err:
            fail(str(err))
    notify_decisions(item_ids)
    click.echo(f"Approved {', '.join(map(str, item_ids))}.")


@items.command("reject")
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Told to the partner.")
@click.option("--editor", default="cli", show_default=True)
def items_reject(item_id: int, reason: str, editor: str) -> None:
    """Reject a submitted item; the partner's contact gets the reason."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.moderation import ModerationError, get_item, reject

    with runtime.current().db.transaction() as s:
        try:
            was = get_item(s, item_id).status
            item = reject(s, item_id, editor, reason)
        except ModerationError as err:
            fail(str(err))
        if was != item.status:
            after = {"status": item.status, "reason": item.decision_reason}
            _audit(s, "item.reject", item_id, {"status": was}, after, editor)
    notify_decisions([item_id])
    click.echo(f"Rejected {item_id}.")


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
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.intake import topic_ids
    from mailer.content.moderation import ModerationError, draft_of, edit, get_item, snapshot

    with runtime.current().db.transaction() as s:
        try:
            item = get_item(s, item_id)
        except ModerationError as err:
            fail(str(err))
        new = {k: v for k, v in changes.items() if v is not None}
        if "body" in new:
            new["body"] = new["body"].replace("\\n", "\n")  # a shell argument has no newlines
        if topics:
            found = topic_ids(s, topics)
            missing = [t for t in topics if t not in found]
            if missing:
                fail(f"No topic {missing[0]!r}.")
            new["topic_ids"] = list(found.values())
        try:
            before = snapshot(item)
            edit(s, item_id, editor, replace(draft_of(item), **new), today=date.today(), note=note)
        except (InvalidInput, ModerationError) as err:
            fail(str(err))
        after = snapshot(item)
        changed = [k for k in after if before.get(k) != after[k]]
        _audit(s, "item.edit", item_id, {k: before.get(k) for k in changed}, {k: after[k] for k in changed}, editor)
    click.echo(f"Edited {item_id}.")


@items.command("feature")
@click.argument("item_id", type=int)
@click.option("--off", is_flag=True, help="remove the featured mark")
@click.option("--editor", default="cli", show_default=True)
def items_feature(item_id, off, editor):
    """Mark an item as featured (or not)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.moderation import ModerationError, get_item, set_featured

    with runtime.current().db.transaction() as s:
        try:
            was = get_item(s, item_id).featured
            set_featured(s, item_id, editor, not off)
        except ModerationError as err:
            fail(str(err))
        if was == off:
            action = "item.unfeature" if off else "item.feature"
            _audit(s, action, item_id, {"featured": was}, {"featured": not off}, editor)
    click.echo(f"Item {item_id} {'is no longer' if off else 'is'} featured.")


@items.command("withdraw")
@click.argument("item_id", type=int)
@click.option("--reason", default="")
@click.option("--editor", default="cli", show_default=True)
def items_withdraw(item_id, reason, editor):
    """Take an approved item back before it is sent."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.moderation import ModerationError, get_item
    from mailer.digest.editions import withdraw_item

    with runtime.current().db.transaction() as s:
        try:
            was = get_item(s, item_id).status
            item = withdraw_item(s, item_id, editor, reason)
        except ModerationError as err:
            fail(str(err))
        if was != item.status:
            after = {"status": item.status, "reason": reason.strip() or None}
            _audit(s, "item.withdraw", item_id, {"status": was}, after, editor)
    click.echo(f"Withdrew {item_id}.")
