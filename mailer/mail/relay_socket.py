"""A plain SMTP connection whose socket calls cost a sending thread as little as they can.

A worker process runs several sending threads. Python's ``socket`` releases the GIL
around every system call, and with a timeout set it first polls the socket, in a
release of its own. Under load another thread takes the GIL at each release, and the
caller then sleeps until it gets it back: about eight context switches a message were
measured in a worker process of four threads. For a plain TCP relay,
:class:`RelayConnection` cuts that down:

- the timeout is the kernel's (``SO_RCVTIMEO`` and ``SO_SNDTIMEO``) on a socket in
  blocking mode, so each read or write is one system call with no poll before it;
- a write first hands the kernel what fits in the socket's buffer without waiting, and
  without releasing the GIL (a call through ctypes' ``PyDLL`` keeps it). A message's
  text usually fits whole; what does not is written the usual way, GIL released.

TLS connections (``smtps://``, ``?starttls=1``) keep smtplib's own socket calls: their
bytes must go through OpenSSL, and OpenSSL's blocking reads expect Python's timeout.

Where the process's threads are greenlets (:mod:`mailer.greenlets`) there is no GIL to
hand over, and a socket the kernel blocks on would stall every greenlet: the socket keeps
gevent's own timeout and waits, and only the first, non-blocking write stays.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import smtplib
import socket
import struct
import sys

from mailer.greenlets import greenlets

# MSG_NOSIGNAL: a relay that hung up gives EPIPE, never a SIGPIPE.
_FLAGS = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0)
_RETRY_LATER = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)
# What a blocking call answers once the kernel's timeout (SO_SNDTIMEO) ran out.
_TIMED_OUT = (errno.EAGAIN, errno.EWOULDBLOCK)

try:  # libc's send(2), called with the GIL held: PyDLL never releases it
    _libc_send = ctypes.PyDLL(None, use_errno=True).send
    _libc_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    _libc_send.restype = ctypes.c_ssize_t
except (OSError, AttributeError):  # pragma: no cover - a libc without send(2)
    _libc_send = None


def send_now(sock: socket.socket, data: bytes) -> int:
    """Write as much of ``data`` as the socket takes at once, without blocking and
    without releasing the GIL; how many bytes were written (0 when none fit, or where
    this is not available). Raises ``OSError`` when the connection is broken."""
    if _libc_send is None or type(data) is not bytes or not data:
        return 0
    sent = _libc_send(sock.fileno(), data, len(data), _FLAGS)
    if sent >= 0:
        return sent
    err = ctypes.get_errno()
    if err in _RETRY_LATER:
        return 0
    raise OSError(err, os.strerror(err))


def write_all(sock: socket.socket, data: bytes) -> None:
    """``sock.sendall(data)``, trying :func:`send_now` first."""
    done = send_now(sock, data)
    if done < len(data):
        sock.sendall(memoryview(data)[done:] if done else data)


def kernel_timeouts(sock: socket.socket, seconds: float) -> None:
    """Let the kernel time out each read and write after ``seconds`` (then ``OSError``
    ``EAGAIN``) and put ``sock`` in blocking mode: no poll before each call."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


class RelayTimeout(smtplib.SMTPServerDisconnected):
    """The relay did not answer, or take our text, within the connection's timeout."""


class RelayConnection(smtplib.SMTP):
    """``smtplib.SMTP`` over a plain TCP connection with the cheaper socket calls above.

    A relay that goes silent still fails the call after ``timeout`` seconds, as with
    smtplib's own timeout: with :class:`RelayTimeout` (an ``SMTPServerDisconnected``),
    and the connection closed."""

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        if isinstance(timeout, (int, float)) and timeout > 0 and not greenlets():
            kernel_timeouts(sock, timeout)
        return sock

    def send(self, s) -> None:
        if not getattr(self, "sock", None):
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        if isinstance(s, str):
            s = s.encode(self.command_encoding)
        sys.audit("smtplib.send", self, s)
        try:
            write_all(self.sock, s)
        except OSError as exc:
            self.close()
            if exc.errno in _TIMED_OUT or isinstance(exc, TimeoutError):  # the kernel's, or gevent's
                raise RelayTimeout(f"the relay took no data for {self.timeout:g} s") from exc
            raise smtplib.SMTPServerDisconnected(f"the relay connection broke: {exc}") from exc

    def getreply(self):
        if self.file is None and getattr(self, "sock", None):
            self.file = _timed_reader(self.sock)
        try:
            return super().getreply()
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib raised it while handling the read's error: ours, or the kernel's
            # ETIMEDOUT (also a TimeoutError).
            if isinstance(exc.__context__, TimeoutError):
                raise RelayTimeout(f"no answer from the relay within {self.timeout:g} s") from exc
            raise


class _TimedSocketIO(socket.SocketIO):
    """Reads that say so when the kernel's timeout ran out: ``socket.SocketIO`` answers
    ``None`` (would block) there, which smtplib cannot tell from a closed connection."""

    def readinto(self, b):
        try:
            return self._sock.recv_into(b)
        except BlockingIOError:
            raise TimeoutError("timed out") from None


def _timed_reader(sock: socket.socket) -> io.BufferedReader:
    """``sock.makefile("rb")`` over :class:`_TimedSocketIO` (makefile's own steps)."""
    raw = _TimedSocketIO(sock, "rb")
    sock._io_refs += 1  # as makefile counts it: the socket closes once its files are closed
    return io.BufferedReader(raw)
