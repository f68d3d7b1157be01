"""The effective configuration as a person may see it: every setting, secrets masked.

For the console's settings page (admins). A value is masked when its name says it is a
secret (key, token, secret, password) and a URL loses its password, so a setting added
later is hidden by default rather than shown by mistake.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit, urlunsplit

_SECRET_WORDS = ("key", "token", "secret", "password")
HIDDEN = "•••• (set, hidden)"


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


def _secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS) and not name.endswith(("_file", "_dir", "_selector"))


def _show(name: str, value) -> str:
    if _secret(name):
        if isinstance(value, tuple | list):
            return f"{len(value)} hidden" if value else "none"
        return HIDDEN if value else "not set"
    if value is None or value == "":
        return "not set"
    if isinstance(value, str) and "://" in value:
        return _mask_url(value)
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def effective(settings) -> list[tuple[str, str]]:
    """``(name, shown value)`` for every field of ``settings`` (nested ones as
    ``delivery.batch_size``), secrets masked."""
    rows: list[tuple[str, str]] = []

    def walk(obj, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((prefix + f.name, _show(f.name, value)))

    walk(settings, "")
    return rows
