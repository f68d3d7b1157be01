"""The ``mailer`` command: Flask's CLI group over the app factory, plus operator commands.

One module per command group; each defines its group (or single command) with
``@click.group("name")`` / ``@click.command("name")`` and this module attaches them all to
:func:`main` with ``add_command`` (the one registration style). Command modules import only
:mod:`mailer.cli._common` from this package, so there is no import cycle.

Each command is a shell: it opens a transaction, calls the domain, prints the outcome.
Commands import the domain inside their bodies so that ``mailer --help`` and each command
load only what they use. When a command (any but ``doctor``) runs, after its arguments are
parsed, so ``--help`` needs no working configuration, the process is booted through the
app factory: settings from the environment, or under Flask's test runner the test's app.
Commands reach it with :func:`mailer.runtime.current`. README's command table lists every
command and option; ``tests/mailer/cli/test_cli.py`` keeps the two in step.
"""

from __future__ import annotations

import click
from flask.cli import FlaskGroup, with_appcontext

from mailer.app import create_app
from mailer.cli.bounces import bounces
from mailer.cli.db import db
from mailer.cli.demo import seed_demo
from mailer.cli.dns import dns_records
from mailer.cli.doctor import doctor
from mailer.cli.edition import edition
from mailer.cli.feeds import feeds
from mailer.cli.groups import groups
from mailer.cli.items import items
from mailer.cli.lmtp import lmtp
from mailer.cli.partners import partners
from mailer.cli.schedule import schedule
from mailer.cli.subscribers import subscribers
from mailer.cli.users import users
from mailer.cli.worker import worker
from mailer.logs import configure_logging
from mailer.settings import ConfigError, Settings

# `doctor` reports on configurations the service refuses to start with: it must not boot.
UNBOOTED = frozenset({"doctor"})


def app_from_environment():
    """The CLI's entry point into the process: settings from the environment, booted."""
    return create_app(Settings.from_env())


def booted(command: click.Command) -> click.Command:
    """``command`` (each command of a group) loads the app, and so boots the process,
    before its body runs: Flask's ``with_appcontext``, as its own commands have."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            booted(sub)
    elif command.callback is not None:
        command.callback = with_appcontext(command.callback)
    return command


@click.group(cls=FlaskGroup, create_app=app_from_environment, add_version_option=False)
def main() -> None:
    """Campaign digest service: web app, workers, editions and demo data."""
    # Logging from the environment's settings, or the defaults when they cannot be read
    # (`mailer doctor` must still run and say why).
    try:
        settings = Settings.from_env()
    except (ConfigError, ValueError):
        settings = None
    configure_logging(settings)


for _command in (
    db,
    seed_demo,
    partners,
    items,
    feeds,
    edition,
    subscribers,
    bounces,
    worker,
    lmtp,
    doctor,
    dns_records,
    schedule,
    users,
    groups,
):
    main.add_command(_command if _command.name in UNBOOTED else booted(_command))

__all__ = ["main"]
