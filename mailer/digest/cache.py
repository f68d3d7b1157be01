"""The one cache of prepared editions: each edition rendered once per process, while unchanged.

Preparing an edition (plan, MJML, inlining) takes a second or more; composing one reader's
copy from it takes microseconds. The delivery workers, the web faces (view online, archive,
preview page) and the CLI's previews all ask :data:`prepared_editions` for the render.

An entry is keyed by the edition's id, its :func:`edition_version` (what a rebuild or an
edit changes) and the settings that reach the render, so a rebuilt or edited edition is
rendered afresh and a stale render is never served. At most ``maxsize`` editions are kept,
the least recently used going first: usually one edition is sending and one or two are
being previewed.

A *variant* is the shared render with something cheap applied on top, made once per entry
(delivery's mailing headers: Reply-To, Feedback-ID); it goes when its entry goes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.orm import Session

from mailer.digest.compose import PreparedEdition, prepare_edition
from mailer.digest.models import Edition
from mailer.settings import Settings


def edition_version(edition: Edition) -> tuple:
    """What changes when ``edition`` is rebuilt (``built_at``) or edited (the fields
    :func:`mailer.digest.lifecycle.edit` sets): equal versions render alike."""
    order = tuple(edition.item_order) if edition.item_order else None
    return (edition.built_at, edition.subject, edition.preheader, edition.intro, edition.featured_item_id, order)


def _settings_key(settings: Settings) -> tuple:
    # Every setting the render reads: links (base URL, signing keys), the footer's postal
    # address, and the shared headers (sender, list id, unsubscribe address).
    return (
        settings.base_url,
        settings.secret_key,
        settings.secret_key_fallbacks,
        settings.postal_address,
        settings.mail_from,
        settings.list_id,
        settings.unsubscribe_mailto,
    )


class _Entry:
    __slots__ = ("prepared", "variants")

    def __init__(self, prepared: PreparedEdition):
        self.prepared = prepared
        self.variants: dict[str, PreparedEdition] = {}


class PreparedEditions:
    """A thread-safe, bounded (least recently used) cache of :class:`PreparedEdition`."""

    def __init__(self, maxsize: int = 4):
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        # Held while rendering too: worker threads starting on one edition wait for one
        # render rather than each making their own.
        self._lock = threading.Lock()

    def get(
        self,
        session: Session,
        edition: Edition,
        settings: Settings,
        *,
        variant: str | None = None,
        finish: Callable[[PreparedEdition], PreparedEdition] | None = None,
    ) -> PreparedEdition:
        """``edition``'s render, made now only if this version has none yet.

        With ``variant``, ``finish(render)`` is applied once and remembered under that name;
        a variant's ``finish`` must depend only on ``edition`` and ``settings``.
        """
        key = (edition.id, edition_version(edition), _settings_key(settings))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(prepare_edition(session, edition, settings))
                self._entries[key] = entry
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            if variant is None:
                return entry.prepared
            if variant not in entry.variants:
                entry.variants[variant] = finish(entry.prepared) if finish else entry.prepared
            return entry.variants[variant]

    def clear(self) -> None:
        """Forget every render (tests that count renders start from nothing)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


prepared_editions = PreparedEditions()
