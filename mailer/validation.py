"""Input checks shared by every form, the CLI and (later) the API."""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit


class InvalidInput(ValueError):
    """Input a person can correct; ``field`` names the form field, ``message`` says how."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def clean_text(field: str, value: str | None, max_length: int) -> str:
    """``value`` trimmed, refusing control characters (CR/LF would inject mail headers)."""
    value = (value or "").strip()
    # isprintable() is False for every Cc/Cf character, so most values skip the loop.
    if not value.isprintable() and any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise InvalidInput(field, "must not contain line breaks or control characters.")
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters.")
    return value


def web_link(field: str, url: str | None) -> str:
    """An absolute http(s) URL, refusing javascript:, data: and relative links."""
    url = clean_text(field, url, 2000)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidInput(field, "must be a full web address starting with https:// or http://.")
    return url
