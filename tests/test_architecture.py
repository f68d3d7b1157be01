"""The shape of the code, beyond what lint-imports checks.

The layer contract lives in pyproject.toml ([tool.importlinter]) and scripts/test runs
`lint-imports`. Here: importing any module of ``mailer/`` or ``subscribers/`` must not read
the application's environment, write a file, make a directory or boot the process (only
entry points do: ``wsgi.py``, ``mailer.worker``, the CLI, ``scheduler.main``); and every
import inside a function says why in a comment, or moves to the top of its module.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

from mailer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Entry points whose import boots the process on purpose, and Alembic's scripts (which run
# only inside Alembic).
ENTRY_POINTS = ("mailer.worker", "mailer.migrations.env", "mailer.migrations.versions")

PROBE = r"""
import importlib, json, os, pkgutil, sys

ENTRY_POINTS = tuple(sys.argv[1].split(","))
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
importing = ["(start)"]
writes, reads = [], []


def hook(event, args):
    if event == "open" and isinstance(args[2], int) and args[2] & WRITE_FLAGS:
        writes.append([importing[0], "open for writing " + str(args[0])])
    elif event in ("os.mkdir", "os.rename", "os.symlink", "os.link"):
        writes.append([importing[0], event + " " + str(args[0])])


real_getitem = os._Environ.__getitem__


def spy(self, key):
    reads.append([importing[0], key])
    return real_getitem(self, key)


os._Environ.__getitem__ = spy  # os.environ[...], .get, `in` and os.getenv all come here
sys.addaudithook(hook)

names = ["scheduler"]
for top in ("mailer", "subscribers"):
    package = importlib.import_module(top)
    names.append(top)
    names += [m.name for m in pkgutil.walk_packages(package.__path__, top + ".")]
for name in sorted(set(names)):
    if name.startswith(ENTRY_POINTS):
        continue
    importing[0] = name
    importlib.import_module(name)
importing[0] = "(end)"

from mailer import runtime

print(json.dumps({"modules": sorted(set(names)), "writes": writes, "reads": reads,
                  "booted": runtime.installed() is not None}))
"""


def application_variables(tmp_path) -> set[str]:
    """Every environment variable the settings read: asked of a recording mapping."""
    asked: set[str] = set()

    class Recording(dict):
        def get(self, key, default=None):
            asked.add(key)
            return super().get(key, default)

        def __getitem__(self, key):
            asked.add(key)
            return super().__getitem__(key)

    Settings.from_env(Recording(MAILER_ENV="test", VAR_DIR=str(tmp_path / "var")))
    return asked


def test_importing_any_module_reads_no_setting_writes_no_file_and_boots_nothing(tmp_path):
    app_vars = application_variables(tmp_path)
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "VAR_DIR", "MAILER_ENV", "SMTP_URL"} <= app_vars
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(cwd),
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(ENTRY_POINTS)],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    assert report["writes"] == [], "importing wrote to the disk"
    read = [(module, key) for module, key in report["reads"] if key in app_vars]
    assert read == [], "importing read the application's environment"
    assert not report["booted"], "importing booted the process"
    assert list(cwd.iterdir()) == []
    assert {
        "mailer.app",
        "mailer.web.subscribers",
        "mailer.actors",
        "mailer.queue",
        "mailer.cli",
        "subscribers.service",
        "scheduler",
    } <= set(report["modules"])  # the walk found them


PACKAGES = ("mailer", "subscribers")
# What a comment may hold besides the reason: linter switches are not reasons.
_SWITCHES = re.compile(r"noqa(:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*)?|type:\s*ignore(\[[^\]]*\])?|pragma:[^#]*")


# Alembic revisions are history, kept as they were written (ruff skips them too).
REVISIONS = ROOT / "mailer" / "migrations" / "versions"


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if REVISIONS not in p.parents)


def function_level_imports(source: str) -> list[tuple[int, int]]:
    """(first line, last line) of every import statement inside a function of ``source``."""
    found: list[tuple[int, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                found.append((child.lineno, child.end_lineno or child.lineno))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def reasons_by_line(source: str) -> dict[int, str]:
    """The comment on each line that carries one, without linter switches."""
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = _SWITCHES.sub("", tok.string.lstrip("#")).strip(" ()-:,;")
            if re.search(r"[A-Za-z]{2,}", text):
                comments[tok.start[0]] = text
    return comments


def unexplained_imports(source: str) -> list[int]:
    """Lines of function-level imports with no reason in a comment: on the import's own
    line(s), or on the line above it or above the run of imports it belongs to."""
    reasons = reasons_by_line(source)
    spans = function_level_imports(source)
    ending_at = {last: first for first, last in spans}
    text = source.splitlines()

    def above(line: int) -> int:  # the nearest line above that is not blank
        line -= 1
        while line > 0 and not text[line - 1].strip():
            line -= 1
        return line

    unexplained = []
    for first, last in spans:
        top = first
        while above(top) in ending_at:  # an import just above (blank lines apart): the same run
            top = ending_at[above(top)]
        if not any(line in reasons for line in range(above(top), last + 1)):
            unexplained.append(first)
    return unexplained


def test_the_check_finds_an_unexplained_import_and_accepts_explained_ones():
    source = (
        "import os\n"
        "def a():\n"
        "    import json\n"
        "def b():\n"
        "    # dnspython is slow to import: only a configured key needs it\n"
        "    import dkim\n"
        "def c():\n"
        "    from x import (y,  # a cycle: x imports this module\n"
        "                   z)\n"
        "def d():\n"
        "    import e  # noqa: F401\n"
        "def e():\n"
        "    # both wait for the call: importing them reads the environment\n"
        "    import f\n"
        "\n"
        "    from g import h\n"
        "class K:\n"
        "    def m(self):\n"
        "        def inner():\n"
        "            import q\n"
    )
    assert unexplained_imports(source) == [3, 11, 20]


def test_every_function_level_import_says_why():
    missing = []
    for path in _sources():
        source = path.read_text(encoding="utf-8")
        missing += [f"{path.relative_to(ROOT)}:{line}" for line in unexplained_imports(source)]
    assert not missing, (
        "Import at the top of the module, or say in a comment (same line or the "
        "line before) why this one waits for the call:\n  " + "\n  ".join(missing)
    )
