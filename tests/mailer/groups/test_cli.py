"""`mailer groups` (mailer/cli/groups.py): create, list, add with a basis, remove, members,
held; refusals change nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from mailer.cli import main
from mailer.groups.models import Group, GroupConsentEvent, GroupMember


def run(app, *args):
    result = app.test_cli_runner().invoke(main, list(args))
    return result.exit_code, result.output


def test_create_add_members_list_and_remove(app, rt, session):
    code, out = run(
        app,
        "groups",
        "create",
        "bme-network",
        "--name",
        "BME staff networks",
        "--description",
        "What other BME staff networks are doing",
        "--owner",
        "Chair@Trust.example.org",
    )
    assert code == 0, out
    assert "bme-network@ertg.example.org (public, open)" in out
    assert "https://digest.example.org/groups/bme-network" in out

    code, out = run(
        app, "groups", "add", "bme-network", "priya@nhs.example", "Sam@GP.example", "--basis", "legitimate-interests"
    )
    assert code == 0, out
    assert "added        priya@nhs.example" in out and "added        Sam@gp.example" in out
    # Again: nobody is added twice.
    code, out = run(app, "groups", "add", "bme-network", "PRIYA@nhs.example", "--basis", "consent")
    assert code == 0 and "already      PRIYA@nhs.example" in out

    code, out = run(app, "groups", "members", "bme-network")
    assert code == 0
    assert "Chair@trust.example.org" in out and "owner" in out
    assert "priya@nhs.example" in out and "legitimate-interests" in out and "3 member(s)" in out

    code, out = run(app, "groups", "list")
    assert "bme-network" in out and "3 members" in out

    code, out = run(app, "groups", "remove", "bme-network", "priya@nhs.example", "nobody@nhs.example")
    assert "removed      priya@nhs.example" in out and "not a member nobody@nhs.example" in out
    session.expire_all()
    member = session.scalar(select(GroupMember).where(GroupMember.email_key == "priya@nhs.example"))
    assert member.status == "removed"
    kinds = list(
        session.scalars(
            select(GroupConsentEvent.detail)
            .where(GroupConsentEvent.member_id == member.id)
            .order_by(GroupConsentEvent.id)
        )
    )
    assert kinds[0].startswith("basis=legitimate-interests role=member by=cli:")
    assert kinds[-1].startswith("by=cli:")


def test_refusals_say_why_and_change_nothing(app, rt, session):
    assert run(app, "groups", "create", "network", "--name", "Network")[0] == 0
    for args, message in (
        (("create", "Bad Slug", "--name", "x"), "slug: must be 1-60 lower-case letters"),
        (("create", "unsubscribe", "--name", "x"), "one of the service's own addresses"),
        (("create", "bounces", "--name", "x"), "one of the service's own addresses"),
        (("create", "network", "--name", "x"), "there is already a group network"),
        (("create", "other", "--name", "x", "--owner", "not-an-address"), "email"),
        (("add", "network", "a@nhs.example", "broken@", "--basis", "consent"), "email"),
        (("add", "nowhere", "a@nhs.example", "--basis", "consent"), "There is no group 'nowhere'"),
        (("members", "nowhere"), "There is no group"),
        (("held", "nowhere"), "There is no group"),
        (("approve", "999"), "There is no post 999"),
        (("reject", "999", "--reason", "off topic"), "There is no post 999"),
    ):
        code, out = run(app, "groups", *args)
        assert code == 1 and message in out, (args, out)
    session.expire_all()
    assert session.scalar(select(func.count(Group.id))) == 1
    assert session.scalar(select(func.count(GroupMember.id))) == 0


def test_a_suppressed_address_is_not_added_by_an_owner(app, rt, session):
    from subscribers.suppression import suppress

    suppress(session, "gone@nhs.example", "hard_bounce")
    session.commit()
    run(app, "groups", "create", "network", "--name", "Network")
    code, out = run(app, "groups", "add", "network", "gone@nhs.example", "ok@nhs.example", "--basis", "consent")
    assert code == 0
    assert "suppressed   gone@nhs.example (on the suppression list: not added)" in out
    assert "added        ok@nhs.example" in out
    code, out = run(app, "groups", "members", "network")
    assert "gone@" not in out and "1 member(s)" in out


def test_announce_only_groups_default_to_the_announce_only_policy(app, rt):
    code, out = run(app, "groups", "create", "news", "--name", "Campaign news", "--visibility", "announce")
    assert code == 0 and "(announce, announce-only)" in out
    code, out = run(app, "groups", "held", "news")
    assert code == 0 and "Nothing held." in out


def test_edit_changes_only_what_is_given_and_ban_drops_mail(app, rt, session):
    from mailer.groups import directory, posting

    run(app, "groups", "create", "network", "--name", "Network", "--description", "First words")
    code, out = run(app, "groups", "edit", "network", "--policy", "moderated", "--no-attachments")
    assert code == 0 and out.strip() == "network: posting_policy, allow_attachments changed"
    code, out = run(app, "groups", "edit", "network", "--policy", "moderated")
    assert code == 0 and "nothing changed" in out
    code, out = run(app, "groups", "edit", "network", "--name", "", "--policy", "open")
    assert code == 1 and "name: is required." in out
    session.expire_all()
    group = directory.get_group(session, "network")
    assert (group.name, group.description, group.posting_policy, group.allow_attachments) == (
        "Network",
        "First words",
        "moderated",
        False,
    )

    code, out = run(app, "groups", "ban", "network", "Troll@Example.org", "spam@example.org")
    assert code == 0 and "Banned 2 address(es) in network." in out
    posting.set_sender_rule(session, group, "friend@example.org", "trust")
    session.commit()
    assert run(app, "groups", "ban", "network", "troll@example.org", "friend@example.org", "--lift")[0] == 0
    session.expire_all()
    rules = {
        a: posting.sender_rule(session, group, a)
        for a in ("troll@example.org", "spam@example.org", "friend@example.org")
    }
    assert rules == {"troll@example.org": None, "spam@example.org": "ban", "friend@example.org": "trust"}
    assert run(app, "groups", "ban", "network", "not an address")[0] == 1


def test_sharing_with_the_digest_needs_a_public_archive_and_a_topic_and_is_audited(app, rt, session):
    from mailer.content.models import Topic
    from mailer.staff.models import AuditEntry

    session.add(Topic(slug="mental-health", name="Mental health", position=0))
    session.commit()
    assert run(app, "groups", "create", "bme-network", "--name", "BME staff networks")[0] == 0
    code, out = run(app, "groups", "edit", "bme-network", "--share-with-digest")
    assert code != 0 and "topic first" in out
    code, out = run(app, "groups", "edit", "bme-network", "--topic", "no-such-topic")
    assert code != 0 and "mental-health" in out  # the topics there are
    code, out = run(app, "groups", "edit", "bme-network", "--topic", "mental-health", "--share-with-digest")
    assert code == 0 and "topic_id, share_with_digest changed" in out, out
    code, out = run(app, "groups", "edit", "bme-network", "--visibility", "members")
    assert code != 0 and "public archive" in out  # a sharing group keeps its archive public
    code, out = run(app, "groups", "edit", "bme-network", "--no-share-with-digest", "--topic", "")
    assert code == 0, out
    session.expire_all()
    group = session.scalar(select(Group).where(Group.slug == "bme-network"))
    assert (group.visibility, group.share_with_digest, group.topic_id) == ("public", False, None)
    entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "group.edit").order_by(AuditEntry.id)))
    assert [e.after for e in entries] == [
        {"topic_id": group_topic(session), "share_with_digest": True},
        {"topic_id": None, "share_with_digest": False},
    ]
    assert all(e.actor.startswith("cli:") and e.object_type == "groups" for e in entries)


def group_topic(session):
    from mailer.content.models import Topic

    return session.scalar(select(Topic.id).where(Topic.slug == "mental-health"))
