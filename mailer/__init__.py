"""The campaign digest engine: content, editions, rendering and delivery.

Domain modules here import neither Flask nor Dramatiq; the web blueprints in
``mailer.web``, the actors in ``mailer.actors`` and the CLI are thin shells; the process is
assembled from settings in one place, :func:`mailer.boot.boot`.
"""
