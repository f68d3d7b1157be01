"""Full-text search over a group's archive, one function for both databases.

* PostgreSQL: a GIN index over ``to_tsvector('english', subject || ' ' || body_text)`` of
  ``group_posts`` (migration ``g12b_archive``): nothing to maintain, the index follows the
  columns. Queries go through ``websearch_to_tsquery``, which accepts any text (quotes,
  ``-``, ``or``) and never raises a syntax error.
* SQLite: an FTS5 table ``group_posts_fts(subject, body)`` whose rowid is the post's id,
  written by :func:`index` when a post is filed and emptied by :func:`unindex` when its
  content goes. The query's words are each quoted as FTS5 strings (``"word"``), so nothing
  a person types is FTS syntax: ``NEAR(``, ``*``, ``"``, ``AND`` are searched as words.

Only approved posts of the one group are found; who may search which group is the
archive's rule (:func:`mailer.groups.archive.can_read`), checked by its caller.
"""

from __future__ import annotations

import re

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session

from mailer.groups.models import APPROVED, GroupPost

SQLITE_TABLE = "group_posts_fts"
MAX_QUERY = 200  # characters of a query that are used
COUNT_CAP = 1000  # matches counted; beyond it a page says "more than 1,000"
_WORD = re.compile(r"\w+", re.UNICODE)


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def index(session: Session, post: GroupPost) -> None:
    """(Re)write the search entry of ``post`` (SQLite; PostgreSQL's index follows the row)."""
    if _sqlite(session):
        session.execute(text(f"DELETE FROM {SQLITE_TABLE} WHERE rowid = :id"), {"id": post.id})
        session.execute(
            text(f"INSERT INTO {SQLITE_TABLE} (rowid, subject, body) VALUES (:id, :subject, :body)"),
            {"id": post.id, "subject": post.subject, "body": post.body_text},
        )


def unindex(session: Session, post_ids: list[int]) -> None:
    if _sqlite(session) and post_ids:  # one executemany
        session.execute(text(f"DELETE FROM {SQLITE_TABLE} WHERE rowid = :id"), [{"id": i} for i in post_ids])


def fts5_query(query: str) -> str:
    """The words of ``query`` as quoted FTS5 strings, all required ("" for no words)."""
    return " ".join(f'"{w}"' for w in _WORD.findall(query[:MAX_QUERY]))


def search(session: Session, group_id: int, query: str, *, limit: int = 20, offset: int = 0) -> tuple[list[int], int]:
    """(ids of the matching approved posts of the group, newest first, one page; how many
    match, counted up to :data:`COUNT_CAP` + 1). A query without words finds nothing.

    Newest first, as group archives list them: ranking by relevance would read every
    match (about a second for 20,000 matches on PostgreSQL; see bench/group_archive.py),
    newest first reads one page."""
    query = " ".join((query or "").split())[:MAX_QUERY]
    wanted = (GroupPost.group_id == group_id, GroupPost.status == APPROVED)
    if _sqlite(session):
        words = fts5_query(query)
        if not words:
            return [], 0
        # FTS5 first, then the posts: SQLite would otherwise walk the group's posts and ask
        # the FTS table once per post (CROSS JOIN fixes the order; measured in bench/).
        params = {"q": words, "g": group_id, "s": APPROVED, "limit": limit, "offset": offset, "cap": COUNT_CAP + 1}
        matches = (
            f"SELECT p.id FROM (SELECT rowid AS post_id FROM {SQLITE_TABLE} WHERE {SQLITE_TABLE} MATCH :q) AS hits "
            "CROSS JOIN group_posts AS p ON p.id = hits.post_id WHERE p.group_id = :g AND p.status = :s"
        )
        total = session.scalar(text(f"SELECT count(*) FROM ({matches} LIMIT :cap)"), params)
        ids = session.scalars(text(f"{matches} ORDER BY p.id DESC LIMIT :limit OFFSET :offset"), params)
        return list(ids), total or 0
    if not _WORD.search(query):
        return [], 0
    # The very expression of the index (no bound parameters in it, or the planner cannot
    # use the index).
    text_of = GroupPost.subject.op("||")(literal_column("' '")).op("||")(GroupPost.body_text)
    document = func.to_tsvector(literal_column("'english'::regconfig"), text_of)
    tsquery = func.websearch_to_tsquery(literal_column("'english'::regconfig"), query)
    base = select(GroupPost.id).where(*wanted, document.op("@@")(tsquery))
    total = session.scalar(select(func.count()).select_from(base.limit(COUNT_CAP + 1).subquery())) or 0
    ids = list(session.scalars(base.order_by(GroupPost.id.desc()).limit(limit).offset(offset)))
    return ids, total
