"""Real servers on loopback for delivery tests: an SMTP relay (aiosmtpd) that can be slow,
refuse some recipients or be switched off, and `dramatiq` worker processes. The private
Redis and PostgreSQL the fault tests restart live in :mod:`bench.servers`, which the
recovery benchmark shares."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from email import message_from_string, policy
from pathlib import Path

from aiosmtpd.controller import Controller

from bench.servers import free_port
from mailer.cli.worker import dramatiq_command

ROOT = Path(__file__).resolve().parents[1]


class Relay:
    """Records every message it accepts. ``busy`` answers every MAIL FROM with 421. ``refuse`` holds address fragments answered with
    550; ``delay`` slows each DATA (so a test can act mid-send); ``pipelining`` announces
    ESMTP PIPELINING, which aiosmtpd handles but does not advertise; ``smtputf8`` offers
    SMTPUTF8 (RFC 6531), so addresses with non-ASCII local parts are accepted."""

    def __init__(
        self,
        port: int | None = None,
        *,
        delay: float = 0.0,
        refuse: tuple[str, ...] = (),
        pipelining: bool = False,
        tls: str | None = None,
        certs: tuple[str, str] | None = None,
        login: tuple[str, str] | None = None,
        defer: dict[str, int] | None = None,
        smtputf8: bool = False,
    ):
        self.port = port or free_port()
        self.defer = dict(defer or {})  # address fragment -> how many times to answer 450
        self.tls, self.certs, self.login = tls, certs, login  # tls: "starttls" or "smtps"
        self.delay, self.refuse, self.pipelining = delay, refuse, pipelining
        self.smtputf8 = smtputf8
        self.busy = False  # True: every MAIL FROM is answered 421 (a relay refusing for now)
        self.messages: list[tuple[str, str, bytes]] = []  # (recipient, return path, data)
        self._lock = threading.Lock()
        self.controller = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.busy:
            return "421 4.3.2 Service busy, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if any(r in address for r in self.refuse):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        for fragment, times in self.defer.items():
            if fragment in address and times > 0:
                self.defer[fragment] = times - 1
                return f"450 4.2.0 <{address}>: greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt, envelope.mail_from, envelope.content))
        return "250 2.0.0 queued"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.login
        # handled=False: aiosmtpd answers a refusal with 535 itself (handled=True would
        # leave the client waiting for a reply that never comes).
        return AuthResult(success=ok, handled=ok)

    def start(self) -> Relay:
        params = {"enable_SMTPUTF8": self.smtputf8}
        if self.tls:
            import ssl

            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*self.certs)
            if self.tls == "smtps":
                params["ssl_context"] = ctx
            else:
                params.update(tls_context=ctx, require_starttls=True)
        if self.login:
            # aiosmtpd's auth_require_tls only knows STARTTLS; smtps is TLS from the start.
            params.update(authenticator=self._authenticate, auth_require_tls=self.tls != "smtps")
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **params)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=10"

    def counts(self) -> Counter:
        with self._lock:
            return Counter(r.lower() for r, _, _ in self.messages)

    def parsed(self, recipient: str):
        """The messages for ``recipient``, parsed; headers read as UTF-8 (RFC 6532)."""
        with self._lock:
            return [
                message_from_string(d.decode("utf-8"), policy=policy.default)
                for r, _, d in self.messages
                if r.lower() == recipient.lower()
            ]


class Workers:
    """One workers' command line in its own process group, once its ``processes`` worker
    processes are ready: by default `mailer worker`'s (dramatiq processes whose threads are
    greenlets, as in production), else ``command``."""

    def __init__(self, env: dict[str, str], processes: int = 1, threads: int = 2, command: list[str] | None = None):
        self.proc = subprocess.Popen(
            command or dramatiq_command(processes, threads),
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.log: list[str] = []
        ready, deadline = 0, time.monotonic() + 60
        while ready < processes:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                self.stop()  # or the half-started group outlives the test, sending on its own
                raise RuntimeError("dramatiq workers did not start:\n" + "".join(self.log[-30:]))
            self.log.append(line)
            ready += "is ready for action" in line
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def kill9_worker(self) -> int:
        pid = self.children()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """End the whole process group at once (SIGKILL). Tests stop their workers once they
        have what they waited for, so nothing is left to finish; a graceful stop would cost
        about three seconds each (dramatiq's loops look for it once a second) and has a test
        of its own (``test_two_sigterms_stop_a_worker_gracefully_nothing_unknown``)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
