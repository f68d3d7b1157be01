"""Pagination arithmetic shared by every paged list (the console's lists, the archive).

A page object is a frozen dataclass of the caller's own rows plus ``total``, ``page`` and
``per_page``; it inherits :class:`Paged` for ``pages``. :func:`clamp` turns a requested
page number into one that exists (page 1 of an empty list included).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session


def page_count(total: int, per_page: int) -> int:
    """How many pages ``total`` rows fill, ``per_page`` a page; at least one."""
    return max(1, -(-total // per_page))


def clamp(page: int, total: int, per_page: int) -> int:
    """``page`` brought within 1..page_count (a link to page 9 of a list that shrank
    shows its last page)."""
    return max(1, min(page, page_count(total, per_page)))


class Paged:
    """Mixin for page dataclasses with ``total`` and ``per_page`` fields."""

    total: int
    per_page: int

    @property
    def pages(self) -> int:
        return page_count(self.total, self.per_page)


@dataclass(frozen=True)
class Page(Paged):
    """A page of rows of any kind."""

    rows: list
    total: int
    page: int
    per_page: int


def counted(session: Session, q, page: int, per_page: int) -> tuple[int, int]:
    """(how many rows ``q`` selects, ``page`` brought within the pages they fill)."""
    total = session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0
    return total, clamp(page, total, per_page)
