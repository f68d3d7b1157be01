"""The shape of the code: what importing a module may do.

Importing any module of ``mailer/`` or ``subscribers/`` must not read the application's
environment, write a file, make a directory or boot the process: only entry points
(``wsgi.py``, ``mailer.worker``, the CLI, ``scheduler.main``) turn the environment into
settings and call :func:`mailer.boot.boot`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
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
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
             "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(cwd)}
    proc = subprocess.run([sys.executable, "-c", PROBE, ",".join(ENTRY_POINTS)], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    assert report["writes"] == [], "importing wrote to the disk"
    read = [(module, key) for module, key in report["reads"] if key in app_vars]
    assert read == [], "importing read the application's environment"
    assert not report["booted"], "importing booted the process"
    assert list(cwd.iterdir()) == []
    assert {"mailer.app", "mailer.web.subscribers", "mailer.actors", "mailer.queue", "mailer.cli",
            "subscribers.service", "scheduler"} <= set(report["modules"])  # the walk found them
