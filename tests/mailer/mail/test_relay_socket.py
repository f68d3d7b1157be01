"""The plain relay connection's socket calls (mailer/mail/relay_socket.py): writes that
never block while holding the GIL, and the kernel's timeouts (gevent's, in a process whose
threads are greenlets), against real sockets."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import subprocess
import sys
import threading
import time

import pytest

from mailer.mail.relay_socket import RelayConnection, RelayTimeout, send_now
from mailer.mail.transport import SMTPTransport, TransientFailure
from tests.mailservers import ROOT, Relay


def test_send_now_writes_what_fits_and_never_waits_for_a_reader():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        data = bytes(range(256)) * 40_000  # 10 MB: more than the socket buffers hold
        started = time.perf_counter()
        first = send_now(ours, data)
        assert 0 < first < len(data)  # part of it, at once, with nobody reading
        assert send_now(ours, data[first:]) == 0  # the buffer is full: nothing, no wait
        assert time.perf_counter() - started < 1
        got = bytearray()
        while len(got) < first:
            got += theirs.recv(1 << 20)
        assert bytes(got) == data[:first]  # what it counted is exactly what went


def test_send_now_reports_a_broken_connection():
    ours, theirs = socket.socketpair()
    theirs.close()
    with ours, pytest.raises(OSError):
        send_now(ours, b"MAIL FROM:<a@example.org>\r\n")


def test_a_message_larger_than_the_socket_buffer_arrives_whole():
    relay = Relay(pipelining=True).start()
    try:
        transport = SMTPTransport(relay.url)
        body = b"".join(b"line %07d of a long digest\r\n" % n for n in range(300_000))  # 8.7 MB
        transport.send("b@bounce.example.org", "r@example.org", b"Subject: big\r\n\r\n" + body)
        transport.close()
        [(rcpt, _, data)] = relay.messages
        assert rcpt == "r@example.org"
        assert data.replace(b"\r\n", b"\n").endswith(body.replace(b"\r\n", b"\n"))
    finally:
        relay.stop()


class SilentRelay:
    """Greets, answers ``answered`` commands (a line each), then reads and says nothing
    more, or with ``read=False`` stops reading too."""

    def __init__(self, answered: int = 0, *, read: bool = True):
        self.answered, self.read = answered, read
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        with contextlib.suppress(OSError):  # the test closes the sockets under it
            self._talk()

    def _talk(self):
        conn, _ = self.server.accept()
        self.held.append(conn)
        conn.sendall(b"220 relay.example.org ESMTP\r\n")
        lines = conn.makefile("rb")
        for _ in range(self.answered):
            lines.readline()
            conn.sendall(b"250 relay.example.org\r\n")
        while self.read and conn.recv(65536):
            pass

    def close(self):
        for conn in self.held:
            conn.close()
        self.server.close()


def test_a_relay_that_goes_silent_fails_the_send_after_the_timeout():
    relay = SilentRelay()
    try:
        transport = SMTPTransport(f"smtp://127.0.0.1:{relay.port}?timeout=0.5")
        started = time.perf_counter()
        with pytest.raises(TransientFailure, match="no answer from the relay within 0.5 s"):
            transport.send("b@bounce.example.org", "r@example.org", b"Subject: hi\r\n\r\nhello\r\n")
        assert 0.4 < time.perf_counter() - started < 5
    finally:
        relay.close()


def test_a_relay_that_stops_reading_fails_the_write_after_the_timeout():
    relay = SilentRelay(answered=1, read=False)
    try:
        conn = RelayConnection("127.0.0.1", relay.port, timeout=0.5)
        conn.ehlo()
        started = time.perf_counter()
        with pytest.raises(RelayTimeout, match="the relay took no data for 0.5 s"):
            conn.send(b"x" * 50_000_000)
        assert 0.4 < time.perf_counter() - started < 5
        assert conn.sock is None  # closed: the next message starts a new connection
    finally:
        relay.close()


def test_a_relay_that_hangs_up_is_not_reported_as_a_timeout():
    relay = SilentRelay()
    try:
        conn = RelayConnection("127.0.0.1", relay.port, timeout=5)
        while not relay.held:
            time.sleep(0.01)
        relay.held[0].shutdown(socket.SHUT_RDWR)  # a FIN, as a relay hanging up sends
        started = time.perf_counter()
        with pytest.raises(smtplib.SMTPServerDisconnected) as caught:
            conn.ehlo()
        assert not isinstance(caught.value, RelayTimeout), caught.value
        assert time.perf_counter() - started < 2  # at once, not after the timeout
    finally:
        relay.close()


# Run under gevent in a process of its own (its patching cannot be undone in this one), as
# a worker started by `mailer worker` runs: a greenlet ticks every 10 ms meanwhile.
UNDER_GREENLETS = """
from gevent import monkey

monkey.patch_all()
import sys
import time

import gevent

from mailer.mail.relay_socket import RelayConnection, RelayTimeout
from mailer.mail.transport import SMTPTransport, TransientFailure

ticks = 0


def tick():
    global ticks
    while True:
        gevent.sleep(0.01)
        ticks += 1


gevent.spawn(tick)
silent, deaf = int(sys.argv[1]), int(sys.argv[2])
started, ticks = time.monotonic(), 0
try:
    SMTPTransport(f"smtp://127.0.0.1:{silent}?timeout=0.5").send("b@bounce.example.org", "r@example.org", b"hi\\r\\n")
except TransientFailure as exc:
    print(f"{exc}|{time.monotonic() - started:.2f}|{ticks}")
conn = RelayConnection("127.0.0.1", deaf, timeout=0.5)
conn.ehlo()
started, ticks = time.monotonic(), 0
try:
    conn.send(b"x" * 50_000_000)
except RelayTimeout as exc:
    print(f"{exc}|{time.monotonic() - started:.2f}|{ticks}")
"""


def test_under_greenlets_a_silent_relay_still_times_out_and_stalls_nobody_else():
    """With gevent (the kernel's timeouts would block the whole process, and gevent's
    wait without one would never end): the same errors after the same timeout, while the
    process's other greenlets run."""
    silent, deaf = SilentRelay(), SilentRelay(answered=1, read=False)
    try:
        done = subprocess.run(
            [sys.executable, "-c", UNDER_GREENLETS, str(silent.port), str(deaf.port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        silent.close()
        deaf.close()
    lines = [line.split("|") for line in done.stdout.splitlines()]
    assert [error for error, _, _ in lines] == [
        "no answer from the relay within 0.5 s",
        "the relay took no data for 0.5 s",
    ], done.stderr
    for _, seconds, ticks in lines:
        assert 0.4 < float(seconds) < 5
        assert int(ticks) >= 10  # about 50 in the half second: the process was not stalled
