"""WSGI entry point: ``gunicorn wsgi:app``. Boots the process from the environment."""

from mailer.app import create_app
from mailer.settings import Settings

app = create_app(Settings.from_env())
