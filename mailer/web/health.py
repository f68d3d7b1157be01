"""Probes for load balancers and process managers: ``/healthz`` and ``/readyz``.

- ``GET /healthz``: this process answers (200, no dependency touched), for liveness:
  restart the process when it stops answering.
- ``GET /readyz``: 200 when every check of :func:`mailer.health.readiness` passes, else
  503; the body maps each check to ``"ok"`` or ``"error"``, for readiness: send traffic
  only to instances that answer 200.

Neither says more than that: why a check failed (host names, driver errors) goes to the
log, and ``mailer doctor`` prints it with what to do. Both are cheap enough to poll every
few seconds (a probe does not wait longer than ``READY_TIMEOUT``).
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from mailer.health import readiness
from mailer.runtime import current as rt

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def _no_store(resp):
    resp.headers["Cache-Control"] = "no-store"  # a proxy must never answer for us
    return resp


@bp.get("/healthz")
def healthz():
    return _no_store(jsonify(status="ok"))


@bp.get("/readyz")
def readyz():
    runtime = rt()
    checks = readiness(runtime.settings, runtime.db.engine)
    for check in checks:
        if check.failed:
            log.warning("readiness: %s failed: %s", check.name, check.detail)
    failed = any(c.failed for c in checks)
    body = {c.name: ("error" if c.failed else "ok") for c in checks}
    return _no_store(jsonify(body)), 503 if failed else 200
