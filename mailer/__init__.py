"""The campaign digest engine: content, editions, rendering and delivery.

Domain modules here import neither Flask nor Dramatiq; the web blueprints in
``mailer.web``, the actors in ``mailer.delivery.actors`` and the CLI are thin shells.
"""
