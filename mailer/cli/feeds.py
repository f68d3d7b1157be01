"""``mailer feeds``: partners' RSS and Atom feeds."""

from __future__ import annotations

from datetime import date

import click

from mailer import runtime
from mailer.cli._common import fail
from mailer.text import strip_controls


@click.group("feeds")
def feeds():
    """Partner RSS/Atom feeds."""


@feeds.command("poll")
@click.argument("slug", required=False)
def feeds_poll(slug):
    """Poll every partner's feed (or only SLUG's) once; new entries arrive as items."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.content.feeds import poll_feeds
    from mailer.content.fetch import FetchOptions

    rt = runtime.current()
    st = rt.settings
    options = FetchOptions(timeout=st.feed_timeout, max_bytes=st.feed_max_bytes, allow_private=st.feed_allow_private)
    results = poll_feeds(rt.db, options, today=date.today(), slug=slug)
    if slug and not results:
        fail(f"No partner with slug {slug!r}.")
    for r in results:
        click.echo(strip_controls(f"{r.partner:28} {r.describe()}", keep=""))
    if slug and results[0].error:
        raise SystemExit(1)  # the one feed asked for failed; with all feeds, errors are per partner
