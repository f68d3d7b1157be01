"""The shape of the code that lint-imports cannot see.

The layer contract itself lives in pyproject.toml ([tool.importlinter]) and scripts/test
runs `lint-imports`; import-linter counts imports inside functions as well, so a
function-level import cannot hide a layer violation. What it cannot tell is why an import
sits inside a function: every one must say so in a comment (a cycle it breaks, a slow
import only some commands need), or move to the top of its module.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mailer", "subscribers")
# What a comment may hold besides the reason: linter switches are not reasons.
_SWITCHES = re.compile(r"noqa(:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*)?|type:\s*ignore(\[[^\]]*\])?|pragma:[^#]*")


# Alembic revisions are history, kept as they were written (ruff skips them too).
REVISIONS = ROOT / "mailer" / "migrations" / "versions"


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                  if REVISIONS not in p.parents)


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
    assert not missing, ("Import at the top of the module, or say in a comment (same line or the "
                         "line before) why this one waits for the call:\n  " + "\n  ".join(missing))
