"""The group delivery ledger (mailer/groups/sending.py) against a real SMTP relay on
loopback: suppressed members skipped, a refused address failed and suppressed, a deferred
one retried until it is delivered, once."""

from __future__ import annotations

from dataclasses import replace
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer.boot import boot
from mailer.cli import main
from mailer.groups.models import GroupDelivery, GroupMember
from mailer.mail.transport import SMTPTransport
from mailer.settings.delivery import DeliveryConfig
from subscribers.suppression import is_suppressed, suppress
from tests.conftest import BOTH_DIALECTS
from tests.mailservers import Relay


@pytest.fixture(autouse=True)
def dmarc(monkeypatch):
    from mailer.actors import groups

    monkeypatch.setattr(groups, "resolver", lambda name: [])  # no DNS from tests


def start(rt, app, queue, relay: Relay, members: list[str]):
    settings = replace(
        rt.settings,
        smtp_url=relay.url,
        delivery=DeliveryConfig.from_env({"SEND_CHUNK_SIZE": "2", "SEND_RETRY_SECONDS": "0.05"}),
    )
    r = boot(settings, transport=SMTPTransport(relay.url))
    runner = app.test_cli_runner()
    assert runner.invoke(main, ["groups", "create", "network", "--name", "Network"]).exit_code == 0
    assert runner.invoke(main, ["groups", "add", "network", *members, "--basis", "consent"]).exit_code == 0
    return r


def post_and_deliver(r, queue, author="a@nhs.example"):
    from mailer.actors.groups import start_group_post
    from mailer.groups import directory, posting

    raw = f"From: {author}\r\nSubject: Hello\r\nMessage-ID: <x@nhs.example>\r\n\r\nHi all\r\n".encode()
    with r.db.transaction() as s:
        received = posting.receive(
            s,
            directory.get_group(s, "network"),
            message_from_bytes(raw, policy=policy.compat32),
            raw,
            author,
            list_domain="ertg.example.org",
            max_recipients=25,
        )
    assert received.action == "accept"
    r.queue.send(start_group_post, received.post_id)
    queue()


def ledger(r) -> dict[str, tuple[str, int, str | None]]:
    with r.db.transaction() as s:
        rows = s.execute(
            select(GroupMember.email, GroupDelivery.status, GroupDelivery.attempts, GroupDelivery.error).join(
                GroupMember, GroupMember.id == GroupDelivery.member_id
            )
        ).all()
    return {e: (st, n, err) for e, st, n, err in rows}


@BOTH_DIALECTS
def test_suppressed_skipped_refused_failed_and_suppressed_deferred_retried_once(app, rt, queue):
    relay = Relay(refuse=("gone@",), defer={"slow@": 2}).start()
    try:
        members = ["a@nhs.example", "b@nhs.example", "gone@nhs.example", "slow@nhs.example", "quiet@nhs.example"]
        r = start(rt, app, queue, relay, members)
        with r.db.transaction() as s:
            suppress(s, "quiet@nhs.example", "complaint")
        post_and_deliver(r, queue)
    finally:
        relay.stop()
    assert relay.counts() == {"a@nhs.example": 1, "b@nhs.example": 1, "slow@nhs.example": 1}
    got = ledger(r)
    assert got["a@nhs.example"] == ("sent", 1, None)
    assert got["slow@nhs.example"][:2] == ("sent", 3)  # deferred twice, then delivered
    assert got["gone@nhs.example"][0] == "failed" and "5.1.1" in got["gone@nhs.example"][2]
    assert got["quiet@nhs.example"] == ("skipped", 0, "the address is on the suppression list")
    with r.db.transaction() as s:
        assert is_suppressed(s, "gone@nhs.example")  # the mailbox is gone: never again
