"""Staff passwords: Argon2id hashes at the cost the settings name (by default argon2-cffi's,
RFC 9106's second choice; cheaper only in tests, see :class:`mailer.settings.PasswordHashing`)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailer.settings import PasswordHashing
from mailer.validation import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 256  # hashing cost grows with length; nobody types more

_cost = PasswordHashing()
_hasher = PasswordHasher()  # type Argon2id; its parameters are stored in every hash
# Verified against when the account does not exist, so a wrong name costs as long as a
# wrong password and the timing does not say which names exist. Made on first use (at the
# configured cost), so importing this module hashes nothing.
_dummy_hash: str | None = None


def use_cost(cost: PasswordHashing) -> None:
    """Hash at ``cost`` from now on (:func:`mailer.boot.boot` passes the settings' cost).
    Hashes made at another cost still verify, and are replaced at the next login."""
    global _cost, _hasher, _dummy_hash
    if cost == _cost:
        return
    _cost = cost
    _hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism)
    _dummy_hash = None


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not a password anyone has")
    return _dummy_hash


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
        _hasher.verify(stored_hash or _dummy(), password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored_hash is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None)
