"""The ``mailer`` command: Flask's CLI group over the app factory, plus operator commands.

One module per command group; each defines its group (or single command) with
``@click.group("name")`` / ``@click.command("name")`` and this module attaches them all to
:func:`main` with ``add_command`` (the one registration style). Command modules import only
:mod:`mailer.cli._common` from this package, so there is no import cycle.

Each command is a shell: it opens a transaction, calls the domain, prints the outcome.
Commands import the domain inside their bodies on purpose: ``mailer --help`` and each
command then load only what they use, and nothing chooses the queue broker (which
``mailer.broker`` does when imported) before the app factory has configured the process.
README's command table lists every command and option; ``tests/test_cli.py`` keeps the two
in step.
"""
from __future__ import annotations

import click
from flask.cli import FlaskGroup

from mailer.app import create_app
from mailer.cli.bounces import bounces
from mailer.cli.db import db
from mailer.cli.demo import seed_demo
from mailer.cli.dns import dns_records
from mailer.cli.doctor import doctor
from mailer.cli.edition import edition
from mailer.cli.feeds import feeds
from mailer.cli.items import items
from mailer.cli.partners import partners
from mailer.cli.subscribers import subscribers
from mailer.cli.users import users
from mailer.cli.worker import worker


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False)
def main() -> None:
    """Campaign digest service: web app, workers, editions and demo data."""


for _command in (db, seed_demo, partners, items, feeds, edition, subscribers, bounces, worker,
                 doctor, dns_records, users):
    main.add_command(_command)

__all__ = ["main"]
