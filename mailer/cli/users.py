"""``mailer users``: staff accounts of the editors' console (the first admin, recovery).

Shells over :mod:`mailer.staff.accounts`. Every change lands in the audit log under the
actor ``cli:<operating-system user>``. Passwords are read from a hidden prompt (or
``--password-stdin`` for scripts), never from an option that ``ps`` and shell history
would keep.
"""

from __future__ import annotations

import sys

import click

from mailer import runtime
from mailer.cli._common import fail
from mailer.cli._common import operator as _actor
from mailer.validation import InvalidInput

ROLE_CHOICE = click.Choice(["admin", "editor", "moderator", "viewer"])


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group("users")
def users() -> None:
    """Staff accounts of the /admin console."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def users_create(username, role, password_stdin):
    """Create a staff account (admins and editors enrol two-factor at first login)."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff.accounts import create_user

    password = _password(password_stdin)
    with runtime.current().db.transaction() as s:
        try:
            user = create_user(s, username, role, password, actor=_actor())
        except InvalidInput as err:
            fail(err.message)
        name = user.username
    click.echo(f"Created {role} {name}. Log in at {runtime.current().settings.base_url}/admin/login")


@users.command("list")
def users_list():
    """Staff accounts, roles, two-factor and status."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff.accounts import list_users

    with runtime.current().db.transaction() as s:
        rows = list_users(s)
        for u in rows:
            twofa = "2fa" if u.totp_secret else "no-2fa"
            state = "disabled" if u.disabled else "active"
            last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never"
            click.echo(f"{u.username:<24} {u.role:<10} {twofa:<7} {state:<9} last login {last}")
    if not rows:
        click.echo("No staff accounts yet: mailer users create NAME --role admin")


@users.command("disable")
@click.argument("username")
def users_disable(username):
    """Stop an account logging in and end its sessions."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff.accounts import disable_user, get_user

    with runtime.current().db.transaction() as s:
        try:
            disable_user(s, get_user(s, username), actor=_actor())
        except InvalidInput as err:
            fail(err.message)
    click.echo(f"Disabled {username.strip().casefold()}.")


@users.command("reset-password")
@click.argument("username")
@click.option("--reset-2fa", is_flag=True, help="also remove two-factor (they enrol again)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def users_reset_password(username, reset_2fa, password_stdin):
    """Set a new password (prompted) and end the account's sessions."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.staff.accounts import get_user, reset_password

    password = _password(password_stdin)  # before the transaction: a prompt can wait a while
    with runtime.current().db.transaction() as s:
        try:
            user = get_user(s, username)
            reset_password(s, user, password, reset_two_factor=reset_2fa, actor=_actor())
        except InvalidInput as err:
            fail(err.message)
        name = user.username
    click.echo(f"New password set for {name}" + (" and two-factor removed." if reset_2fa else "."))
