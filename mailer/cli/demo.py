"""``mailer seed-demo``: the campaign's demo data."""

from __future__ import annotations

from datetime import date

import click

from mailer import runtime


@click.command("seed-demo")
def seed_demo() -> None:
    """Load demo topics, partners, approved items and confirmed subscribers (once)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.demo import demo_console_account
    from mailer.demo import seed_demo as load_demo

    rt = runtime.current()
    with rt.db.transaction() as s:
        secrets = load_demo(s, date.today())
        console = demo_console_account(s) if secrets is not None and rt.settings.development else None
    if secrets is None:
        click.echo("Demo data is already loaded (run `mailer partners link SLUG` for a submission link).")
        return
    click.echo("Demo data loaded. Partner submission links (shown once):")
    for slug, secret in secrets.items():
        click.echo(f"  {slug:26} {rt.settings.base_url}/submit/{secret}")
    if console is not None:
        name, password = console
        click.echo(f"Console: {rt.settings.base_url}/admin  user {name}, password {password} (shown once;")
        click.echo("  you enrol two-factor at the first login: any authenticator app reads the QR code).")
