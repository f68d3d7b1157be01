"""``mailer groups``: create and list groups, add and remove members, list held posts
and decide on them, remove a post from the archive.

Shells over :mod:`mailer.groups`: each opens a transaction, calls the domain, prints, and
enqueues (deliveries, notices) only after the commit. A refused command changes nothing.
"""

from __future__ import annotations

import click

from mailer import runtime
from mailer.cli._common import cli_actor, fail
from mailer.text import strip_controls
from mailer.validation import InvalidInput, email_address

VISIBILITY = click.Choice(["public", "members", "announce"])
POLICY = click.Choice(["open", "moderated", "all-moderated", "announce-only"])
ROLE = click.Choice(["member", "moderator", "owner"])
DELIVERY = click.Choice(["every", "digest", "web"])
BASIS = click.Choice(["consent", "legitimate-interests", "contract", "existing-member"])


# The fields `groups edit` can change (their values before and after go to the audit log).
EDITABLE = (
    "name",
    "description",
    "visibility",
    "posting_policy",
    "max_bytes",
    "allow_attachments",
    "topic_id",
    "share_with_digest",
)


def _safe(text: str) -> str:
    return strip_controls(text, keep="")


def _group(s, slug: str):
    """The group ``slug``, or the command fails saying there is none."""
    from mailer.groups import directory  # loaded when a command runs: `mailer --help` stays fast

    try:
        return directory.get_group(s, slug)
    except directory.GroupError as err:
        fail(str(err))


@click.group("groups")
def groups() -> None:
    """Groups (mailing lists): create, members, held posts."""


@groups.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The group's name, shown in its emails and pages.")
@click.option("--description", default="", help="What the group is for (its page shows it).")
@click.option("--visibility", type=VISIBILITY, default="public", show_default=True, help="Who may read the archive.")
@click.option(
    "--policy", type=POLICY, default=None, help="Posting policy (default: open; announce-only groups: announce-only)."
)
@click.option("--owner", "owners", multiple=True, metavar="EMAIL", help="An owner (repeatable); added as a member.")
@click.option(
    "--max-bytes", type=click.IntRange(1000), default=2_000_000, show_default=True, help="Larger posts are held."
)
@click.option("--no-attachments", is_flag=True, help="Hold posts with attachments.")
@click.option("--topic", default=None, metavar="TOPIC", help="The digest topic whose readers see shared threads.")
@click.option(
    "--share-with-digest", is_flag=True, help="List the group's threads in the monthly digest (public archive only)."
)
def groups_create(
    slug, name, description, visibility, policy, owners, max_bytes, no_attachments, topic, share_with_digest
):
    """Create a group at SLUG@ the list domain."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import directory, service

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            group = directory.create_group(
                s,
                slug,
                name,
                reserved=directory.reserved_locals(rt.settings),
                description=description,
                visibility=visibility,
                policy=policy,
                max_bytes=max_bytes,
                allow_attachments=not no_attachments,
                topic=topic,
                share_with_digest=share_with_digest,
                by=cli_actor(),
            )
            if owners:
                service.add_members(s, group, list(owners), basis="contract", role="owner", by=cli_actor())
        except InvalidInput as err:
            s.rollback()
            fail(f"{err.field}: {err.message}")
        address = directory.address_of(group, rt.settings.list_domain)
        line = f"Created {group.slug}: {address} ({group.visibility}, {group.posting_policy})"
    click.echo(_safe(line))
    click.echo(f"Page: {rt.settings.base_url}/groups/{slug.strip().lower()}")


@groups.command("edit")
@click.argument("slug")
@click.option("--name", default=None)
@click.option("--description", default=None)
@click.option("--visibility", type=VISIBILITY, default=None)
@click.option("--policy", type=POLICY, default=None)
@click.option("--max-bytes", type=click.IntRange(1000), default=None)
@click.option("--attachments/--no-attachments", default=None, help="Take posts with attachments, or hold them.")
@click.option("--topic", default=None, metavar="TOPIC", help='The digest topic for shared threads ("" for none).')
@click.option(
    "--share-with-digest/--no-share-with-digest",
    default=None,
    help="List the group's threads in the monthly digest's \"What networks are doing\" (public archive and a topic).",
)
def groups_edit(slug, name, description, visibility, policy, max_bytes, attachments, topic, share_with_digest):
    """Change a group; only the options given."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import directory
    from mailer.staff import audit

    with runtime.current().db.transaction() as s:
        try:
            group = directory.get_group(s, slug)
            before = {k: getattr(group, k) for k in EDITABLE}
            changed = directory.edit_group(
                s,
                group,
                name=name,
                description=description,
                visibility=visibility,
                policy=policy,
                max_bytes=max_bytes,
                allow_attachments=attachments,
                topic=topic,
                share_with_digest=share_with_digest,
            )
        except (InvalidInput, directory.GroupError) as err:
            s.rollback()
            fail(f"{err.field}: {err.message}" if isinstance(err, InvalidInput) else str(err))
        if changed:
            audit.record(
                s,
                cli_actor(),
                "group.edit",
                group,
                before={k: before[k] for k in changed},
                after={k: getattr(group, k) for k in changed},
            )
        line = f"{group.slug}: " + (", ".join(changed) + " changed" if changed else "nothing changed")
    click.echo(_safe(line))


@groups.command("ban")
@click.argument("slug")
@click.argument("emails", nargs=-1, required=True)
@click.option("--lift", is_flag=True, help="Lift the ban instead.")
def groups_ban(slug, emails, lift):
    """Drop (never answer) mail from these addresses to the group, or lift that."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import directory, posting

    with runtime.current().db.transaction() as s:
        try:
            group = directory.get_group(s, slug)
            addresses = [email_address("email", e) for e in emails]
        except (InvalidInput, directory.GroupError) as err:
            s.rollback()
            fail(err.message if isinstance(err, InvalidInput) else str(err))
        for address in addresses:
            if lift and posting.sender_rule(s, group, address) != "ban":
                continue  # lifting a ban leaves a trusted sender trusted
            posting.set_sender_rule(s, group, address, None if lift else "ban", by=cli_actor())
    verb = "Lifted the ban on" if lift else "Banned"
    click.echo(_safe(f"{verb} {len(addresses)} address(es) in {slug}."))


@groups.command("list")
def groups_list():
    """Groups, their addresses, policies and member counts."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import directory

    rt = runtime.current()
    with rt.db.transaction() as s:
        rows = directory.list_groups(s)
        for g, count in rows:
            address = directory.address_of(g, rt.settings.list_domain)
            shared = " shared with the digest" if g.share_with_digest else ""
            click.echo(
                _safe(f"{g.slug:<24} {address:<40} {g.visibility:<9} {g.posting_policy:<14} {count} members{shared}")
            )
    if not rows:
        click.echo("No groups yet: mailer groups create SLUG --name NAME")


@groups.command("add")
@click.argument("slug")
@click.argument("emails", nargs=-1, required=True)
@click.option("--basis", type=BASIS, required=True, help="Why you may add them (recorded in their consent ledger).")
@click.option("--role", type=ROLE, default="member", show_default=True)
@click.option("--delivery", type=DELIVERY, default="every", show_default=True, help="How they get messages.")
def groups_add(slug, emails, basis, role, delivery):
    """Add members to a group (all or nothing: one invalid address adds nobody)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import directory, service

    with runtime.current().db.transaction() as s:
        try:
            group = directory.get_group(s, slug)
            added = service.add_members(
                s, group, list(emails), basis=basis, role=role, delivery=delivery, by=cli_actor()
            )
        except (InvalidInput, directory.GroupError) as err:
            s.rollback()
            fail(err.message if isinstance(err, InvalidInput) else str(err))
    for a in added:
        note = " (on the suppression list: not added)" if a.outcome == "suppressed" else ""
        click.echo(_safe(f"{a.outcome:<12} {a.email}{note}"))


@groups.command("remove")
@click.argument("slug")
@click.argument("emails", nargs=-1, required=True)
def groups_remove(slug, emails):
    """Remove members from a group."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import service

    with runtime.current().db.transaction() as s:
        group = _group(s, slug)
        outcome = service.remove_members(s, group, list(emails), by=cli_actor())
    for email, what in outcome.items():
        click.echo(_safe(f"{what:<12} {email}"))


@groups.command("members")
@click.argument("slug")
def groups_members(slug):
    """A group's members: address, role, delivery mode, basis, since when."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import service

    with runtime.current().db.transaction() as s:
        group = _group(s, slug)
        rows = service.members(s, group)
        for m in rows:
            since = m.joined_at.strftime("%Y-%m-%d") if m.joined_at else "-"
            click.echo(_safe(f"{m.email:<40} {m.role:<10} {m.delivery:<7} {m.basis:<22} since {since}"))
        click.echo(f"{len(rows)} member(s)")


@groups.command("status")
@click.argument("slug")
def groups_status(slug):
    """A group's deliveries (posts and daily digests) by status."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import sending

    with runtime.current().db.transaction() as s:
        group = _group(s, slug)
        counts = sending.group_counts(s, group.id)
    for status in ("pending", "sending", "sent", "failed", "skipped", "unknown"):
        click.echo(f"{status:<8} {counts.get(status, 0)}")
    if counts.get("unknown"):
        click.echo(
            f"{counts['unknown']} may or may not have reached the relay (a worker stopped while sending them); "
            f"send them again with `mailer groups resend-unknown {slug}`."
        )


@groups.command("resend-unknown")
@click.argument("slug")
def groups_resend_unknown(slug):
    """Send again the group's deliveries whose fate is unknown (some may arrive twice)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.actors.groups import send_group_deliveries
    from mailer.groups import sending
    from mailer.staff import audit

    rt = runtime.current()
    with rt.db.transaction() as s:
        group = _group(s, slug)
        n = sending.resend_unknown(s, group.id)
        if n:
            audit.record(s, cli_actor(), "group.resend_unknown", group, after={"deliveries": n})
        ids = sending.pending_of_group(s, group.id)
    for batch in sending.batches(ids, rt.settings.delivery.batch_size):
        rt.queue.send(send_group_deliveries, batch)
    click.echo(f"{n} unknown deliveries of {slug} sent again.")


@groups.command("held")
@click.argument("slug")
def groups_held(slug):
    """Posts held for a moderator, oldest first, with why they were held."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import posting

    rt = runtime.current()
    with rt.db.transaction() as s:
        group = _group(s, slug)
        posts = posting.held_posts(s, group)
        for p in posts:
            when = p.received_at.strftime("%Y-%m-%d %H:%M")
            click.echo(_safe(f"{p.id:>6}  {when}  {p.author_email}  {p.subject[:60]}"))
            click.echo(_safe(f"        held: {p.hold_reason}"))
    if not posts:
        click.echo("Nothing held.")
    else:
        click.echo(f"{len(posts)} held; they expire after {rt.settings.groups.hold_days} days.")


@groups.command("approve")
@click.argument("post_id", type=int)
@click.option("--trust", is_flag=True, help="Also accept the sender's later posts without a hold.")
def groups_approve(post_id, trust):
    """Approve a held post: it goes to the members."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.actors.groups import start_group_post
    from mailer.groups import directory, posting

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            posting.approve(
                s,
                post_id,
                by=cli_actor(),
                trust=trust,
                attachment_max_bytes=rt.settings.groups.archive_attachment_max_bytes,
            )
        except directory.GroupError as err:
            fail(str(err))
    rt.queue.send(start_group_post, post_id)
    click.echo(f"Approved post {post_id}" + (" and trusted its sender." if trust else "."))


@groups.command("reject")
@click.argument("post_id", type=int)
@click.option("--reason", required=True, help="Told to the sender.")
def groups_reject(post_id, reason):
    """Reject a held post; the sender is told the reason."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.actors.groups import send_post_decision
    from mailer.groups import directory, notices, posting

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            posting.reject(s, post_id, by=cli_actor(), reason=reason)
        except directory.GroupError as err:
            fail(str(err))
    rt.queue.send(send_post_decision, notices.REJECTED, post_id)
    click.echo(f"Rejected post {post_id}; its sender is told why.")


@groups.command("discard")
@click.argument("post_id", type=int)
@click.option("--ban", is_flag=True, help="Also drop the sender's later mail to the group.")
def groups_discard(post_id, ban):
    """Discard a held post silently (spam)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import directory, posting

    with runtime.current().db.transaction() as s:
        try:
            posting.discard(s, post_id, by=cli_actor(), ban=ban)
        except directory.GroupError as err:
            fail(str(err))
    click.echo(f"Discarded post {post_id}" + (" and banned its sender." if ban else "."))


@groups.command("remove-post")
@click.argument("slug")
@click.argument("post_id", type=int)
@click.option("--reason", default="", help="Why (kept with the post and in the audit log).")
def groups_remove_post(slug, post_id, reason):
    """Remove a post from the group's archive ("removed by a moderator"); audited."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.groups import directory, removal
    from mailer.staff.audit import record

    with runtime.current().db.transaction() as s:
        try:
            group = directory.get_group(s, slug)
            post = removal.remove_post(s, group, post_id, by=cli_actor(), reason=reason)
        except directory.GroupError as err:
            fail(str(err))
        after = {"status": post.status, "reason": post.decision_reason, "group": slug}
        record(s, cli_actor(), "groups.post.remove", post, {"status": "approved"}, after)
    click.echo(f"Removed post {post_id} from the archive of {slug}.")
