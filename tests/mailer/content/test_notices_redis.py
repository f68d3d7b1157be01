"""Partner notices through the real path: Redis broker, a `dramatiq` worker process, SMTP.

The message is delivered twice (as Redis may after a worker dies); the partner gets one email.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from datetime import date

import pytest

from mailer.cli.worker import dramatiq_command
from mailer.content.intake import ItemDraft, submit_item
from mailer.content.models import Partner
from tests.conftest import REDIS_URL, need
from tests.factories import make_partner, topic_ids

pytestmark = [pytest.mark.redis, pytest.mark.dialects("postgresql")]  # a worker process: once, on PostgreSQL


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


def test_receipt_goes_through_redis_and_a_worker_process_once(rt, settings, tmp_path):
    import dramatiq
    from aiosmtpd.controller import Controller
    from dramatiq.brokers.redis import RedisBroker

    redis_url = need(REDIS_URL, "TEST_REDIS_URL")
    pid, _, _ = make_partner(rt)
    with rt.db.transaction() as s:
        draft = ItemDraft(
            title="Heart screening",
            summary="s",
            link="https://example.org/x",
            kind="news",
            topic_ids=[topic_ids(s)["heart-health"]],
            contact_email="comms@partner.example.org",
        )
        item_id = submit_item(s, s.get(Partner, pid), draft, today=date.today()).id
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd needs a real port number up front
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    broker = RedisBroker(url=redis_url)
    broker.flush_all()
    env = {
        **os.environ,
        "MAILER_ENV": "test",
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": redis_url,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "VAR_DIR": str(tmp_path / "worker-var"),
        "MAIL_FROM": settings.mail_from,
    }
    worker = subprocess.Popen(
        dramatiq_command(1, 1, "--queues", "transactional"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, ended whole below
    )
    try:
        for _ in range(2):
            broker.enqueue(
                dramatiq.Message(
                    queue_name="transactional",
                    actor_name="send_partner_notice",
                    args=("receipt", item_id),
                    kwargs={},
                    options={},
                )
            )
        # Both deliveries of the message worked off (acknowledged), whatever each one did:
        # a wrong second email would be in the inbox by now.
        broker.join("transactional", interval=20, timeout=30_000)
        # to the partner's registered contact (make_partner's), not the typed contact_email
        assert [rcpt for rcpt, _ in inbox.messages] == [["office@partner.example.org"]]
        assert b"Subject: Received: Heart screening" in inbox.messages[0][1]
    finally:
        # At once: the messages are worked off (a graceful stop costs dramatiq seconds).
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=15)
        broker.flush_all()
        broker.close()
        smtp.stop()
