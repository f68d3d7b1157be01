"""A person deciding on held group posts from the console: claim, approve (optionally
trusting the sender), reject with a reason (the sender is told), discard (optionally
banning the sender), approve many; each under a claim and written to the audit log.

The decisions and the post's state are :mod:`mailer.groups.posting`'s; this module adds
who may act (the claim, as :mod:`mailer.staff.moderating` does for partner items) and the
record of it. Audit entries name the post, never the sender's address (the log is never
edited, so it must hold nothing an erasure would have to remove). Functions never commit and never send mail: the edge enqueues the post's
delivery or the sender's notice after its commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.groups import posting
from mailer.groups.directory import GroupError
from mailer.groups.models import GroupPost
from mailer.staff import audit, claims
from mailer.staff.claims import ClaimOutcome, Holder
from mailer.staff.models import StaffUser
from mailer.staff.moderating import BulkOutcome, approve_each

KIND = "post"  # the inbox source and claim kind of held group posts


class PostBusy(GroupError):
    """Someone else holds the post's claim."""

    def __init__(self, post_id: int, holder: Holder):
        self.holder = holder
        super().__init__(
            f"{holder.username} is working on post {post_id} (claimed at {holder.claimed_at:%H:%M} UTC, "
            f"until {holder.expires_at:%H:%M} UTC unless they release it)."
        )


def get_post(session: Session, post_id: int) -> GroupPost:
    post = session.get(GroupPost, post_id)
    if post is None:
        raise GroupError(f"There is no post {post_id}.")
    return post


def _take(session: Session, user: StaffUser, post_id: int, now: datetime) -> GroupPost:
    post = get_post(session, post_id)
    outcome = claims.claim(session, KIND, post_id, user, now)
    if not outcome:
        raise PostBusy(post_id, outcome.holder)
    return post


def _by(user: StaffUser) -> str:
    return f"console:{user.username}"


def claim_post(session: Session, user: StaffUser, post_id: int, *, now: datetime, ip: str | None) -> ClaimOutcome:
    """Claim (or renew the claim on) a post; :class:`PostBusy` when someone else holds it."""
    get_post(session, post_id)
    outcome = claims.claim_noted(session, KIND, ("group_posts", post_id), user, now, noun="group_post", ip=ip)
    if not outcome:
        raise PostBusy(post_id, outcome.holder)
    return outcome


def release_post(session: Session, user: StaffUser, post_id: int, *, ip: str | None) -> bool:
    """Give up one's own claim (someone else's stays). True if there was one."""
    return claims.release_noted(session, KIND, ("group_posts", post_id), user, noun="group_post", ip=ip)


def _record(session, user, action, post: GroupPost, ip, **after) -> None:
    audit.record(
        session,
        user,
        action,
        post,
        before={"status": "held"},
        after={"status": post.status, "group": post.group.slug, **after},
        ip=ip,
    )


def approve_post(
    session: Session, user: StaffUser, post_id: int, *, trust: bool = False, now: datetime, ip: str | None
) -> GroupPost:
    """Approve a held post (the caller enqueues its delivery); with ``trust``, the sender's
    later posts to the group are accepted without a hold, in the same step."""
    _take(session, user, post_id, now)
    post = posting.approve(session, post_id, by=_by(user), trust=trust)
    _record(session, user, "group_post.approve", post, ip, **({"trusted_sender": True} if trust else {}))
    claims.release(session, KIND, post_id)
    return post


def reject_post(
    session: Session, user: StaffUser, post_id: int, reason: str, *, now: datetime, ip: str | None
) -> GroupPost:
    """Reject a held post; the caller sends its sender the reason."""
    _take(session, user, post_id, now)
    post = posting.reject(session, post_id, by=_by(user), reason=reason)
    _record(session, user, "group_post.reject", post, ip, reason=post.decision_reason)
    claims.release(session, KIND, post_id)
    return post


def discard_post(
    session: Session, user: StaffUser, post_id: int, *, ban: bool = False, now: datetime, ip: str | None
) -> GroupPost:
    """Discard a held post silently; with ``ban``, the sender's later mail is dropped."""
    _take(session, user, post_id, now)
    post = posting.discard(session, post_id, by=_by(user), ban=ban)
    _record(session, user, "group_post.discard", post, ip, **({"banned_sender": True} if ban else {}))
    claims.release(session, KIND, post_id)
    return post


def approve_posts(session: Session, user: StaffUser, post_ids, *, now: datetime, ip: str | None) -> BulkOutcome:
    """Approve each of ``post_ids`` that can be; the others (claimed by someone else,
    decided already) are left as they were and reported with why."""
    return approve_each(session, post_ids, lambda p: approve_post(session, user, p, now=now, ip=ip), GroupError)
