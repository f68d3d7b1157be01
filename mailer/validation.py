"""Input checks shared by every form, the API, the CLI and the importer."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOMAIN_MAX_LENGTH, EMAIL_MAX_LENGTH


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


# A plain ASCII address (dot-atom local part; letters, digits and hyphens in dot-separated
# domain labels; a top-level domain ending in a letter) is the common case, and for it
# email-validator's answer is known: the address with its domain lower-cased. Checking that
# here takes a few microseconds, against about a hundred for the library's full
# Unicode-aware parse, which matters to a 100,000-row import. Anything else, and anything the library treats
# specially (RFC 2142 role mailboxes, Punycode and "ab--" labels, special-use domains,
# lengths near the limits), goes to email-validator; tests/mailer/test_validation.py checks that
# both ways agree over a varied list of addresses.
_PLAIN_ADDRESS = re.compile(
    r"([A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+(?:\.[A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+)*)"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z])"
)
_ROLE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)  # email-validator lower-cases these
# Special-use names of one label are found by the domain's last label (a set lookup); any
# longer one the library may list is checked as a suffix.
_SPECIAL_USE_TLDS = frozenset(d for d in SPECIAL_USE_DOMAIN_NAMES if "." not in d)
_SPECIAL_USE_DOMAINS = tuple(d for d in SPECIAL_USE_DOMAIN_NAMES if "." in d)


def _plain_address(value: str) -> str | None:
    """``value`` normalised as email-validator would, if it is a plain ASCII address that
    the library certainly accepts; None means "ask the library"."""
    m = _PLAIN_ADDRESS.fullmatch(value)
    if m is None or len(value) > EMAIL_MAX_LENGTH:
        return None
    local, domain = m.group(1), m.group(2).lower()
    if "--" in domain or local.lower() in _ROLE_MAILBOXES or len(domain) > DOMAIN_MAX_LENGTH:
        return None
    if domain.rpartition(".")[2] in _SPECIAL_USE_TLDS:
        return None
    for special in _SPECIAL_USE_DOMAINS:
        if domain == special or domain.endswith("." + special):
            return None
    return f"{local}@{domain}"


def email_address(field: str, value: str | None, *, required: bool = True) -> str | None:
    """The address in the form we store and compare, or :class:`InvalidInput`.

    ``value`` is trimmed; a line break anywhere is refused (it would inject mail headers);
    the rest is email-validator's syntax check, with internationalised addresses accepted
    and no DNS lookup (an address is proven by the mail it receives, not by a resolver).
    An empty value is None when not ``required``; otherwise the validator says what is
    missing. Every form, the API, the CLI and the importer call this one function.
    """
    if value is not None and ("\r" in value or "\n" in value):
        raise InvalidInput(field, "must not contain line breaks.")
    value = (value or "").strip()
    if not value and not required:
        return None
    plain = _plain_address(value)
    if plain is not None:
        return plain
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise InvalidInput(field, f"is not a valid email address ({err}).") from None
