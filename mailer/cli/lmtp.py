"""``mailer lmtp``: the receiver for inbound mail (:mod:`mailer.lmtp`), as its own process.

Point the MTA's transport for our addresses at it (Postfix: ``lmtp:inet:HOST:PORT`` in
``transport_maps``). In embedded mode (no ``REDIS_URL``) this process also runs worker
threads, like every process that enqueues. At start, and every few minutes, messages
accepted but not yet processed (a crash, a queue message lost) are enqueued again, and so
are group posts of the last days whose deliveries are still pending.
"""

from __future__ import annotations

import signal
import sys
import time

import click

from mailer.cli._common import fail

SWEEP_SECONDS = 300


@click.command("lmtp")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8024, show_default=True, type=click.IntRange(1, 65535), help="TCP port to listen on.")
def lmtp(host: str, port: int) -> None:
    """Receive inbound mail over LMTP: unsubscribe addresses, bounces, group posts."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer import runtime
    from mailer.actors.groups import requeue_group_posts
    from mailer.actors.inbound import process_inbound, requeue_unprocessed, router
    from mailer.lmtp import Receiver

    rt = runtime.current()
    rt.queue.ensure_worker()  # embedded mode: this process works off what it enqueues
    receiver = Receiver(
        rt.db,
        router(),
        lambda message_id: rt.queue.send(process_inbound, message_id),
        host=host,
        port=port,
        max_bytes=rt.settings.inbound_max_bytes,
    )
    try:
        receiver.start()
    except Exception as err:  # aiosmtpd re-raises what bind() raised
        fail(f"cannot listen on {host}:{port}: {err}")
    # systemd stops services with SIGTERM: leave through the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    waiting = requeue_unprocessed()
    click.echo(f"LMTP receiver on {host}:{port} ({waiting} accepted message(s) re-queued); Ctrl-C to stop.")
    try:
        while True:
            time.sleep(SWEEP_SECONDS)
            requeue_unprocessed(older_than_seconds=SWEEP_SECONDS)
            requeue_group_posts()  # group posts whose queue messages were lost
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
