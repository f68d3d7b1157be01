"""WSGI entry point: ``gunicorn wsgi:app``."""
from mailer.app import create_app

app = create_app()
