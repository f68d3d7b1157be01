"""The campaign digest engine: content, editions, rendering and delivery.

The domain packages (``content``, ``digest``, ``delivery``, with ``subscribers`` beside
them) import neither Flask, Dramatiq nor Click, take a session and never commit. The edges
(web blueprints, Dramatiq actors, CLI commands, the scheduler) are thin shells over them:
they alone open transactions and enqueue work. The process is assembled from settings
in one place, :func:`mailer.boot.boot`.
"""
