"""The console's blueprint, apart from the package so route modules can import it without
importing the package that imports them (no cycle)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/admin")
