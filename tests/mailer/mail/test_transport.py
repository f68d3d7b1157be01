"""The SMTP transport (mailer/mail/transport.py): a run of messages over one pipelined
connection, one round trip each, against a real relay on loopback (aiosmtpd)."""

from __future__ import annotations

import pytest

from mailer.mail import transport as transport_module
from mailer.mail.transport import PermanentFailure, SMTPTransport
from tests.factories import message_template
from tests.mailservers import Relay


def message(n: int) -> bytes:
    return f"From: d@example.org\r\nTo: r{n}@example.org\r\nSubject: {n}\r\n\r\n.dot line\r\nbody {n}\r\n".encode()


@pytest.fixture
def relay():
    r = Relay(pipelining=True).start()
    yield r
    r.stop()


def spy_writes(transport: SMTPTransport) -> list[bytes]:
    """Every write on this thread's connection to the relay, from now on."""
    conn = transport._connection()
    writes: list[bytes] = []
    real = conn.send

    def send(data):
        writes.append(data if isinstance(data, bytes) else data.encode())
        return real(data)

    conn.send = send
    return writes


def test_each_message_end_carries_the_next_envelope_and_every_message_arrives_whole(relay):
    transport = SMTPTransport(relay.url)
    writes = spy_writes(transport)
    envelopes = [(f"b{n}@bounce.example.org", f"r{n}@example.org") for n in range(4)]
    for n, (sender, rcpt) in enumerate(envelopes):
        transport.send(sender, rcpt, message(n), envelopes[n + 1] if n + 1 < len(envelopes) else None)
    transport.close()
    # One write a message after the first: its end of data with the next MAIL, RCPT, DATA.
    ends = [w for w in writes if b"\r\n.\r\n" in w]
    assert len(ends) == 4
    for n, end in enumerate(ends[:3]):
        assert end.endswith(
            f"MAIL FROM:<b{n + 1}@bounce.example.org>\r\nRCPT TO:<r{n + 1}@example.org>\r\nDATA\r\n".encode()
        )
    assert ends[3].endswith(b"\r\n.\r\n")
    alone = [w for w in writes if w.startswith(b"MAIL FROM")]
    assert alone == [b"MAIL FROM:<b0@bounce.example.org>\r\nRCPT TO:<r0@example.org>\r\nDATA\r\n"]  # the first only
    got = sorted((rcpt, path, data) for rcpt, path, data in relay.messages)
    assert [(r, p) for r, p, _ in got] == [(rcpt, sender) for sender, rcpt in envelopes]
    for n, (_, _, data) in enumerate(got):
        assert data.replace(b"\r\n", b"\n").endswith(f".dot line\nbody {n}\n".encode())  # dots unstuffed


def test_an_announced_message_that_never_follows_is_never_delivered(relay):
    """Stopping after an envelope was announced (SIGTERM, the database lost) drops the
    connection: without its end of data the relay delivers nothing of it."""
    transport = SMTPTransport(relay.url)
    transport.send("b0@bounce.example.org", "r0@example.org", message(0), ("b1@bounce.example.org", "r1@example.org"))
    transport.close()
    # A different message than the one announced: the announced one dies with its connection.
    transport.send("b2@bounce.example.org", "r2@example.org", message(2), ("b3@bounce.example.org", "r3@example.org"))
    transport.send("b4@bounce.example.org", "r4@example.org", message(4))
    transport.close()
    assert sorted(r for r, _, _ in relay.messages) == ["r0@example.org", "r2@example.org", "r4@example.org"]


def test_an_announced_recipient_the_relay_refuses_fails_alone():
    relay = Relay(pipelining=True, refuse=("gone@",)).start()
    try:
        transport = SMTPTransport(relay.url)
        transport.send(
            "b0@bounce.example.org", "r0@example.org", message(0), ("b1@bounce.example.org", "gone@example.org")
        )
        with pytest.raises(PermanentFailure) as refused:
            transport.send(
                "b1@bounce.example.org", "gone@example.org", message(1), ("b2@bounce.example.org", "r2@example.org")
            )
        assert refused.value.recipient and "550" in str(refused.value)
        transport.send("b2@bounce.example.org", "r2@example.org", message(2))
        transport.close()
    finally:
        relay.stop()
    assert sorted(r for r, _, _ in relay.messages) == ["r0@example.org", "r2@example.org"]


def test_before_end_runs_once_the_envelope_is_taken_and_before_the_text(relay):
    """The caller records the previous outcome before this message is handed over: when
    the hook runs, the relay has this envelope but none of its text, and nothing is
    delivered yet; then the text, its end and the next envelope go in one write."""
    transport = SMTPTransport(relay.url)
    writes = spy_writes(transport)
    seen = []

    def before_end():
        seen.append((list(writes), len(relay.messages)))

    then = ("b1@bounce.example.org", "r1@example.org")
    transport.send("b0@bounce.example.org", "r0@example.org", message(0), then, before_end)
    ((written, delivered),) = seen
    assert b"".join(written).endswith(b"DATA\r\n") and b"body 0" not in b"".join(written)
    assert delivered == 0
    last = writes[-1]
    assert b"body 0\r\n.\r\nMAIL FROM:<b1@bounce.example.org>\r\nRCPT TO:<r1@example.org>\r\nDATA\r\n" in last
    assert last.startswith(message(0)[:20])
    transport.send(*then, message(1))
    transport.close()
    assert [r for r, _, _ in relay.messages] == ["r0@example.org", "r1@example.org"]


def test_a_before_end_that_fails_hands_nothing_over(relay):
    """The previous outcome could not be recorded (the database is away): this message's
    end is never sent, the connection is dropped, the error reaches the caller."""

    class Lost(Exception):
        pass

    def lost():
        raise Lost("database unreachable")

    transport = SMTPTransport(relay.url)
    transport.send("b0@bounce.example.org", "r0@example.org", message(0), ("b1@bounce.example.org", "r1@example.org"))
    with pytest.raises(Lost):
        transport.send("b1@bounce.example.org", "r1@example.org", message(1), None, lost)
    transport.send("b2@bounce.example.org", "r2@example.org", message(2))
    transport.close()
    assert sorted(r for r, _, _ in relay.messages) == ["r0@example.org", "r2@example.org"]


def test_a_message_our_builder_made_goes_out_without_a_scan_for_dots(relay, monkeypatch):
    """Its lines never start with a dot (``Envelope.dot_free``), so the transport does not
    look for one: a scan of a whole digest was 8 % of a sending worker's CPU."""

    class NoScan:
        def search(self, data):
            raise AssertionError("scanned a message promised dot-free")

    env = message_template().build(
        to_name="Amina", to_address="amina@example.org", text=".card\nHello\n", html="<p>.card</p>\n"
    )
    monkeypatch.setattr(transport_module, "_DOT_LINE", NoScan())
    transport = SMTPTransport(relay.url)
    transport.send("b0@bounce.example.org", env.recipient, env.data, dot_free=env.dot_free)
    with pytest.raises(AssertionError, match="promised dot-free"):  # any other message is scanned
        transport.send("b1@bounce.example.org", "r1@example.org", message(1))
    transport.close()
    [(rcpt, _, data)] = relay.messages
    assert rcpt == "amina@example.org"
    assert data.replace(b"\r\n", b"\n") == env.data.replace(b"\r\n", b"\n")
