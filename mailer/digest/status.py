"""The edition state machine: the one module that changes ``Edition.status``.

Everything else (the editor's lifecycle, the fan-out, the sending workers, the operator's
controls, later the admin UI) asks for a :class:`Move` by name and gets either the new
state or an :class:`EditionStateError` that names the states involved.

| move | from | to | also |
|---|---|---|---|
| :data:`SCHEDULE` | draft | scheduled | sets ``scheduled_for`` |
| :data:`UNSCHEDULE` | scheduled | draft | clears ``scheduled_for`` |
| :data:`START` | draft, scheduled | sending | (sending, sent: allowed, no change) |
| :data:`PAUSE` | sending | paused | |
| :data:`RESUME` | paused | sending | |
| :data:`RESEND` | sent | sending | (sending: allowed, no change) |
| :data:`FINISH` | sending | sent | stamps ``sent_at`` |
| :data:`CANCEL` | draft, scheduled, sending, paused | cancelled | stamps ``cancelled_at`` |

Moves "allowed, no change" exist because starting a send that is already going (a repeated
``mailer edition send``, a redelivered queue message) must be harmless.

A move is one guarded ``UPDATE ... WHERE status IN (from)``, so two processes racing (a
worker finishing the last delivery while the operator cancels) cannot both win: the loser
sees the state the winner left. Functions take a session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from mailer.db import utcnow
from mailer.digest.editions import EditionError
from mailer.digest.models import CANCELLED, DRAFT, PAUSED, SCHEDULED, SENDING, SENT, STATUSES, Edition


@dataclass(frozen=True)
class Move:
    """One named transition: from any of ``sources`` to ``to``."""

    name: str  # what it is called in an error: "be cancelled", "start sending"
    to: str
    sources: frozenset[str]
    stays: frozenset[str] = frozenset()  # states where the move is allowed and changes nothing
    stamp: str | None = None  # a column set to the time of the move
    clears: tuple[str, ...] = ()  # columns that lose their value
    takes: tuple[str, ...] = ()  # columns the caller gives a value for

    def allows(self, status: str) -> bool:
        return status in self.sources or status in self.stays


def _move(name: str, to: str, sources, stays=(), **kw) -> Move:
    return Move(name, to, frozenset(sources), frozenset(stays), **kw)


SCHEDULE = _move("be scheduled", SCHEDULED, {DRAFT}, takes=("scheduled_for",))
UNSCHEDULE = _move("be unscheduled", DRAFT, {SCHEDULED}, clears=("scheduled_for",))
START = _move("start sending", SENDING, {DRAFT, SCHEDULED}, stays={SENDING, SENT})
PAUSE = _move("be paused", PAUSED, {SENDING})
RESUME = _move("be resumed", SENDING, {PAUSED})
RESEND = _move("be sent again", SENDING, {SENT}, stays={SENDING})
FINISH = _move("be marked sent", SENT, {SENDING}, stamp="sent_at")
CANCEL = _move("be cancelled", CANCELLED, {DRAFT, SCHEDULED, SENDING, PAUSED}, stamp="cancelled_at")

MOVES = (SCHEDULE, UNSCHEDULE, START, PAUSE, RESUME, RESEND, FINISH, CANCEL)


class EditionStateError(EditionError):
    """The edition is in a state the asked-for move cannot start from. The message names
    both states and the ones the move can start from."""

    def __init__(self, period: str, status: str, move: Move) -> None:
        self.period, self.status, self.move = period, status, move
        able = [s for s in STATUSES if move.allows(s)]
        able_text = ", ".join(able[:-1]) + f" or {able[-1]}" if len(able) > 1 else able[0]
        super().__init__(
            f"The {period} edition is {status}; it cannot {move.name} "
            f"({status} -> {move.to}): only a {able_text} edition can."
        )


def check(edition: Edition, move: Move) -> None:
    """Refuse (:class:`EditionStateError`) if ``move`` cannot start from the edition's status
    as loaded; changes nothing. For callers that must know before doing other work."""
    if not move.allows(edition.status):
        raise EditionStateError(edition.period, edition.status, move)


def transition(
    session: Session, edition: Edition | int, move: Move, *, quiet: bool = False, now: datetime | None = None, **values
) -> bool:
    """Make ``move`` on ``edition`` (an :class:`Edition` or its id). True if the edition is
    now where the move leads (moved, or already there and ``move.stays`` allows it).

    Refused moves raise :class:`EditionStateError` and change nothing; with ``quiet`` they
    return False instead (a worker finishing or pausing a send that someone else already
    moved on). An edition object in the session is kept in step with the row.
    """
    if set(values) != set(move.takes):
        raise TypeError(f"{move.name} takes {move.takes}, not {tuple(values)}")
    edition_id = edition if isinstance(edition, int) else edition.id
    changes = {"status": move.to, **values, **dict.fromkeys(move.clears)}
    if move.stamp:
        changes[move.stamp] = now or utcnow()
    moved = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status.in_(move.sources))
        .values(**changes)
        .returning(Edition.id)
        .execution_options(synchronize_session=False)
    ).first()
    obj = session.identity_map.get(identity_key(Edition, edition_id))
    if moved is not None:
        if obj is not None:
            for key, value in changes.items():
                set_committed_value(obj, key, value)
        return True
    period, status = session.execute(select(Edition.period, Edition.status).where(Edition.id == edition_id)).one()
    if obj is not None:
        set_committed_value(obj, "status", status)  # someone else moved it meanwhile
    if status in move.stays:
        return True
    if quiet:
        return False
    raise EditionStateError(period, status, move)
