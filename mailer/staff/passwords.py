"""Staff passwords: Argon2id hashes (argon2-cffi's defaults, RFC 9106's second choice)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailer.validation import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 256  # hashing cost grows with length; nobody types more

_hasher = PasswordHasher()  # type Argon2id; its parameters are stored in every hash
# Verified against when the account does not exist, so a wrong name costs as long as a
# wrong password and the timing does not say which names exist.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


def check_password_rules(password: str) -> None:
    """Raise :class:`InvalidInput` when ``password`` is too short or too long."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput("password", f"A password needs at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise InvalidInput("password", f"A password may have at most {MAX_LENGTH} characters.")


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password``, after :func:`check_password_rules`."""
    check_password_rules(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """``(matches, new_hash)``: ``new_hash`` is set when the hash was made with weaker
    parameters than today's and should replace the stored one. ``stored_hash`` None (no such
    account) spends the same time and never matches."""
    if len(password) > MAX_LENGTH:
        return False, None
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored_hash is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None)
