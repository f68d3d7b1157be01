"""Web faces of the engine (subscriber pages, partner submission, digest archive and
preview, API, health): thin shells over the domain, one blueprint per face.

``csrf`` lives here, not in :mod:`mailer.app`, so blueprints can exempt a route without
importing the app factory that imports them.
"""

from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
