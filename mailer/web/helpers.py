"""Small helpers every blueprint uses."""
from __future__ import annotations

from flask import current_app, request

from mailer.runtime import Runtime


def rt() -> Runtime:
    return current_app.extensions["mailer.runtime"]


def client_ip() -> str | None:
    return request.remote_addr
