"""The deploy recipe (deploy/): every command its systemd units and compose file run exists,
with those options, in this release; the environment template covers README's settings;
the proxy sends the headers the app believes."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from mailer.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALL = "/opt/mailer"  # where the units expect the checkout
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecStop")


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit's [Service] section (backslash continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    section, found = None, {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def check_mailer(args: list[str]) -> None:
    """``mailer ARGS`` names a command of this CLI and its options parse (click's own
    parser: unknown options, missing values and bad choices raise)."""
    command: click.Command = main
    words = list(args)
    path = ["mailer"]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        name = words.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`{' '.join(path)}` has no command {name!r}"
        command, path = sub, [*path, name]
    assert not isinstance(command, click.Group), f"`{' '.join(path)}` is a group, not a command"
    command.make_context(" ".join(path), words)


def check_gunicorn(args: list[str]) -> None:
    """Gunicorn's own argument parser accepts the options, and the app it is given exists."""
    from gunicorn.config import Config

    try:
        parsed = Config().parser().parse_args(args)
    except SystemExit:
        raise AssertionError(f"gunicorn refuses {args}") from None
    assert len(parsed.args) == 1, parsed.args
    module, _, attribute = parsed.args[0].partition(":")
    source = ROOT / f"{module.replace('.', '/')}.py"
    assert source.exists(), f"gunicorn's app module {module} is not in the checkout"
    assigned = {
        t.id
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert (attribute or "application") in assigned, f"{module} defines no {attribute}"


def check_python(args: list[str]) -> None:
    """``python scheduler.py``: the script exists and runs its main() when started."""
    assert args == ["scheduler.py"], args
    tree = ast.parse((ROOT / "scheduler.py").read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "main" in functions
    assert any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)


CHECKS = {"mailer": check_mailer, "gunicorn": check_gunicorn, "python": check_python}


def check_command(argv: list[str]) -> None:
    program = Path(argv[0]).name
    assert program in CHECKS, f"unexpected program {argv[0]}"
    CHECKS[program](argv[1:])


def unit_commands():
    for unit in UNITS:
        for key in EXEC_KEYS:
            for line in unit_settings(unit).get(key, []):
                argv = shlex.split(line)
                if argv[0].startswith(f"{INSTALL}/.venv/bin/"):
                    yield pytest.param(unit, argv, id=f"{unit.stem}:{key}")


@pytest.mark.parametrize("unit, argv", list(unit_commands()))
def test_every_unit_runs_a_command_this_release_has(unit, argv):
    check_command(argv)
    settings = unit_settings(unit)
    assert settings["WorkingDirectory"] == [INSTALL]  # wsgi.py and scheduler.py are relative
    assert settings["EnvironmentFile"] == ["/etc/mailer/mailer.env"]
    assert settings["User"] == ["mailer"]


def test_units_cover_web_workers_scheduler_and_upgrades():
    starts = {u.stem: shlex.split(unit_settings(u)["ExecStart"][0]) for u in UNITS}
    programs = {name: argv[1:3] for name, argv in starts.items()}
    assert Path(starts["mailer-web"][0]).name == "gunicorn" and starts["mailer-web"][-1] == "wsgi:app"
    assert programs["mailer-worker"] == ["worker", "--processes"]
    assert programs["mailer-scheduler"] == ["scheduler.py"]
    assert programs["mailer-upgrade"] == ["db", "upgrade"]


@pytest.mark.parametrize("service", ["migrate", "web", "worker", "scheduler", "lmtp"])
def test_every_compose_service_runs_a_command_this_release_has(service):
    check_command(compose()["services"][service]["command"])


def test_compose_persists_redis_and_migrates_before_starting_the_app():
    services = compose()["services"]
    assert services["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] in services["web"]["tmpfs"]
    redis = services["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    for name in ("web", "worker", "scheduler", "lmtp"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    "argv",
    [
        ["mailer", "worker", "--procs", "2"],
        ["mailer", "db", "migrate"],
        ["mailer", "db"],
        ["mailer", "dns-records", "--dmarc-policy", "strict"],
        ["/opt/mailer/.venv/bin/gunicorn", "--no-such-flag", "wsgi:app"],
        ["gunicorn", "wsgi:application"],
        ["python", "clock.py"],
    ],
)
def test_the_command_check_catches_a_command_that_would_fail(argv):
    with pytest.raises((AssertionError, click.ClickException)):
        check_command(argv)


def test_environment_template_names_every_setting_in_readme():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }
    assert len(documented) > 40
    template = (DEPLOY / "mailer.env").read_text()
    named = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", template, re.M))
    assert documented - named == set()
    assert named - documented == set()
    active = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", template, re.M))
    assert active["MAILER_ENV"] == "production" and active["TRUSTED_PROXIES"] == "1"
    assert active["BASE_URL"].startswith("https://")


def test_the_proxy_forwards_what_the_app_trusts_and_logs_no_paths():
    conf = (DEPLOY / "nginx.conf").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in code
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in code
    bind = shlex.split(unit_settings(DEPLOY / "systemd/mailer-web.service")["ExecStart"][0])
    assert f"server {bind[bind.index('--bind') + 1]};" in code  # nginx proxies to gunicorn
    assert re.search(r"listen 443 ssl;", code) and "return 301 https://" in code
    log_format = re.search(r"log_format mailer_no_paths (.*?);", code, re.S).group(1)
    assert not re.search(r"\$(request|request_uri|uri|args|query_string)\b", log_format)
    assert all(
        line.split()[-1] == "mailer_no_paths;" for line in code.splitlines() if line.strip().startswith("access_log")
    )
