"""Inbound mail: what arrives at our addresses, routed by address and handled.

The LMTP receiver (:mod:`mailer.lmtp`, an edge) asks :mod:`.routing` whether an address is
ours at RCPT time, checks the message with :mod:`.parse` at the end of DATA, stores it
(:mod:`.store`) before answering 250, and hands its id to the queue; the queue's actor
calls :func:`.process.process`, which runs the route's handler (:mod:`.handlers`).

Domain code: it imports no flask, dramatiq or aiosmtpd, takes a ``session`` and never
commits.
"""
