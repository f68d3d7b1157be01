"""Benchmark partner intake: Markdown sanitising, feed polling and API submissions.

    .venv/bin/python bench/partner_intake.py            # SQLite in a temp dir
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/partner_intake.py

Prints timings; asserts nothing (speed targets live here, not in tests).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
tmp = tempfile.mkdtemp(prefix="bench-intake-")
os.environ.setdefault("VAR_DIR", tmp)
os.environ.pop("REDIS_URL", None)

from mailer.boot import boot  # noqa: E402
from mailer.content.feeds import poll_feeds  # noqa: E402
from mailer.content.fetch import FetchOptions  # noqa: E402
from mailer.content.models import Partner, Topic  # noqa: E402
from mailer.content.partners import issue_api_token  # noqa: E402
from mailer.content.sanitize import markdown_to_html  # noqa: E402
from mailer.mail.transport import MemoryTransport  # noqa: E402
from mailer.schema import upgrade  # noqa: E402
from mailer.settings import Settings  # noqa: E402

ENTRIES = 200
BODY = (
    "## Why it matters\n\nMinority ethnic patients report **lower satisfaction** with "
    "[sexual health services](https://example.org/report). <script>x()</script>\n\n"
    + "- a point about access, outreach and interpreters\n"
    * 40
)


def feed(n: int, offset: int = 0) -> bytes:
    items = "".join(
        f"<item><title>Post {i}</title><link>https://example.org/p/{i}</link><guid>g{i}</guid>"
        f"<category>Sexual health</category><description>&lt;p&gt;Summary {i} with "
        f"&lt;b&gt;bold&lt;/b&gt; text.&lt;/p&gt;</description></item>"
        for i in range(offset, offset + n)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>b</title>{items}</channel></rss>'.encode()


BODIES = {"/feed": feed(ENTRIES)}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        body = BODIES["/feed"]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    settings = Settings.from_env(
        {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench", "MAILER_ENV": "test", "VAR_DIR": tmp}
    )
    upgrade(url)
    rt = boot(settings, transport=MemoryTransport())
    print(f"database: {url.split(':')[0]}, cpus: {os.cpu_count()}")

    runs = []
    for _ in range(200):
        t = time.perf_counter()
        markdown_to_html(BODY)
        runs.append((time.perf_counter() - t) * 1000)
    print(f"markdown_to_html, {len(BODY)} chars: median {statistics.median(runs):.2f} ms")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with rt.db.transaction() as s:
        from sqlalchemy import select

        if s.scalar(select(Topic.id).where(Topic.slug == "sexual-health")) is None:
            s.add(Topic(slug="sexual-health", name="Sexual health", position=0))
        s.execute(Partner.__table__.update().values(active=False))  # poll only this run's partner
        p = Partner(
            slug=f"bench-{time.time_ns()}",
            name="Bench",
            feed_url=f"http://127.0.0.1:{httpd.server_address[1]}/feed",
            description="",
        )
        s.add(p)
        s.flush()
        _, token = issue_api_token(s, p)
    opts = FetchOptions(allow_private=True, max_bytes=10_000_000)
    t = time.perf_counter()
    (r,) = poll_feeds(rt.db, opts, today=date.today())
    first = time.perf_counter() - t
    t = time.perf_counter()
    poll_feeds(rt.db, opts, today=date.today())
    again = time.perf_counter() - t
    print(
        f"feed poll, {ENTRIES} new entries: {first * 1000:.0f} ms ({first / ENTRIES * 1000:.2f} ms/entry, "
        f"{len(r.new_item_ids)} items); re-poll, all seen: {again * 1000:.0f} ms"
    )
    httpd.shutdown()

    from mailer.app import create_app

    client = create_app(settings, rt.transport).test_client()
    n = 300
    t = time.perf_counter()
    for i in range(n):
        resp = client.post(
            "/api/v1/items",
            json={
                "kind": "news",
                "title": f"API item {i}",
                "summary": "Summary.",
                "link": "https://example.org/a",
                "topics": ["sexual-health"],
                "body": BODY,
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 201, resp.json
    took = time.perf_counter() - t
    print(
        f"API POST /api/v1/items, {n} requests in one thread: {n / took:.0f} req/s "
        f"({took / n * 1000:.2f} ms each, receipts not enqueued: no contact)"
    )


if __name__ == "__main__":
    main()
