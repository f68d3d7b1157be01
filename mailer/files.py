"""Files and directories holding personal data, readable by the service's user only.

``var/`` holds the development key, the SQLite database and the file outbox (every email,
addresses and personal links included). They are created 0700 (directories) and 0600
(files) whatever the process umask, and tightened when an older install left them open.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created with its parents)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner can read (created empty if missing).

    An existing file is never opened, only chmod-ed: closing any descriptor of a file
    drops every POSIX lock this process holds on it, and SQLite's locks on a database
    another engine of this process has open would silently vanish ("disk I/O error").
    """
    path = Path(path)
    if not path.exists():
        try:  # O_EXCL: if someone created it meanwhile, theirs stands and is chmod-ed below
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        except FileExistsError:
            pass
    if path.stat().st_mode & 0o777 != FILE_MODE:
        path.chmod(FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` created 0600 (never readable by others, not
    even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
