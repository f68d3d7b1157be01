"""``mailer seed-demo``: the campaign's demo data."""

from __future__ import annotations

from datetime import date

import click

from mailer import runtime


@click.command("seed-demo")
def seed_demo() -> None:
    """Load demo topics, partners, approved items and confirmed subscribers (once)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.demo import seed_demo as load_demo

    rt = runtime.current()
    with rt.db.transaction() as s:
        secrets = load_demo(s, date.today())
    if secrets is None:
        click.echo("Demo data is already loaded (run `mailer partners link SLUG` for a submission link).")
        return
    click.echo("Demo data loaded. Partner submission links (shown once):")
    for slug, secret in secrets.items():
        click.echo(f"  {slug:26} {rt.settings.base_url}/submit/{secret}")
