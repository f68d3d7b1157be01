"""What every command module shares: the one way a command reports an error."""

from __future__ import annotations

import getpass
import sys
from typing import NoReturn

import click


def fail(message: str) -> NoReturn:
    """Print ``Error: message`` on standard error and exit with status 1.

    Commands call this before or instead of committing, so a refused command changes nothing.
    """
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def operator() -> str:
    """Who ran the command, for audit and consent records: ``cli:<operating-system user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in the environment or the password database
        return "cli:unknown"
