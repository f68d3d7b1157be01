"""``mailer partners``: partner organisations, their submission links and API tokens.

Shells over :mod:`mailer.content.partners`: each opens a transaction, calls the domain and
prints the outcome.
"""

from __future__ import annotations

import click

from mailer import runtime
from mailer.cli._common import fail
from mailer.text import strip_controls
from mailer.validation import InvalidInput


@click.group("partners")
def partners() -> None:
    """Partner organisations."""


def _partner(s, slug):
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import partner_by_slug

    p = partner_by_slug(s, slug)
    if p is None:
        fail(f"No partner with slug {slug!r}.")
    return p


_partner_options = [
    click.option("--name"),
    click.option("--website"),
    click.option("--description"),
    click.option("--logo-url"),
    click.option("--contact-email"),
    click.option("--feed-url", help="RSS or Atom address; empty to remove"),
    click.option("--trusted/--not-trusted", default=None, help="trusted partners skip moderation"),
    click.option("--active/--inactive", default=None),
]


def _with_partner_options(f):
    for opt in reversed(_partner_options):
        f = opt(f)
    return f


def _fields(kw):
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import PartnerFields

    return PartnerFields(
        **{
            k: kw.get(k)
            for k in ("name", "website", "description", "logo_url", "contact_email", "feed_url", "trusted", "active")
        }
    )


@partners.command("add")
@click.argument("slug")
@_with_partner_options
def partners_add(slug, **kw):
    """Add a partner and print its submission link."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import create_partner, rotate_submit_secret

    rt = runtime.current()
    with rt.db.transaction() as s:
        try:
            p = create_partner(s, slug, _fields(kw))
        except InvalidInput as err:
            fail(str(err))
        secret = rotate_submit_secret(p)
    click.echo(f"Added {slug}. Submission link (shown once): {rt.settings.base_url}/submit/{secret}")


@partners.command("edit")
@click.argument("slug")
@_with_partner_options
def partners_edit(slug, **kw):
    """Change a partner's details (only the options given)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import apply_partner_fields

    with runtime.current().db.transaction() as s:
        try:
            apply_partner_fields(_partner(s, slug), _fields(kw))
        except InvalidInput as err:
            fail(str(err))
    click.echo(f"Updated {slug}.")


@partners.command("list")
def partners_list():
    """Partners, with their flags and the state of their feed."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import all_partners

    with runtime.current().db.transaction() as s:
        for p in all_partners(s):
            flags = (
                ",".join(
                    f
                    for f, on in (
                        ("inactive", not p.active),
                        ("trusted", p.trusted),
                        ("no-link", not p.submit_token_hash),
                    )
                    if on
                )
                or "-"
            )
            feed = (
                "no feed"
                if not p.feed_url
                else (
                    f"feed ERROR: {p.feed_error}"
                    if p.feed_error
                    else f"feed ok (checked {p.feed_checked_at or 'never'})"
                )
            )
            click.echo(strip_controls(f"{p.slug:28} {flags:18} {feed}", keep=""))


@partners.command("link")
@click.argument("slug")
def partners_link(slug: str) -> None:
    """Issue a new submission link for SLUG (the old one stops working)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import rotate_submit_secret

    rt = runtime.current()
    with rt.db.transaction() as s:
        secret = rotate_submit_secret(_partner(s, slug))
    click.echo(f"{rt.settings.base_url}/submit/{secret}")


@partners.command("revoke-link")
@click.argument("slug")
def partners_revoke_link(slug):
    """Switch a partner's submission link off (API tokens keep working)."""
    # loaded when the command runs, so `mailer --help` stays fast
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
    """Issue an API token for SLUG (printed once; only its hash is kept)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import issue_api_token

    with runtime.current().db.transaction() as s:
        try:
            row, secret = issue_api_token(s, _partner(s, slug), label)
        except InvalidInput as err:
            fail(str(err))
        token_id = row.id
    click.echo(f"Token {token_id} for {slug} (shown once; send as 'Authorization: Bearer ...'):\n{secret}")


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id):
    """Make API token TOKEN_ID stop working."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import revoke_api_token

    with runtime.current().db.transaction() as s:
        if revoke_api_token(s, token_id) is None:
            fail(f"There is no token {token_id}.")
    click.echo(f"Token {token_id} revoked.")


@token.command("list")
@click.argument("slug")
def token_list(slug):
    """SLUG's API tokens: prefix, live or revoked, last use."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.partners import api_tokens_of

    with runtime.current().db.transaction() as s:
        for t in api_tokens_of(s, _partner(s, slug)):
            state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
            click.echo(
                strip_controls(
                    f"{t.id:5}  {t.prefix}…  {state:18} last used {t.last_used_at or 'never'}  {t.label}", keep=""
                )
            )
