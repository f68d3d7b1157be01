"""``/metrics`` for Prometheus, and what every request records: its id, latency and log line.

``GET /metrics`` answers in Prometheus's text format (see :mod:`mailer.metrics`) to a
client in ``METRICS_ALLOW`` (networks; default loopback only) or, when ``METRICS_TOKEN`` is
set, to one sending ``Authorization: Bearer <METRICS_TOKEN>``; anyone else gets 403 (401
when a token could have opened it). The networks are the default because a Prometheus
server scrapes from known addresses and needs no secret to hold; the token is for a
scraper that reaches the app through the reverse proxy, where every client looks alike.
The client is the real one (``TRUSTED_PROXIES``, ProxyFix), so a request through the
proxy never counts as loopback.

Every request gets an id (``X-Request-ID``: the proxy's, if it sent a well-formed one and
the app trusts proxies, else a new one), returned in the response and carried by every
log line of the request (:mod:`mailer.logs`); its latency is observed by route template
(``/manage/<token>``), never by the path, which carries the token itself; and one log line
records it (except the probes and scrapes, polled every few seconds).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
import uuid

from flask import Blueprint, Flask, Response, g, request

from mailer import logs
from mailer import telemetry as events
from mailer.metrics.exposition import render
from mailer.runtime import current as rt

bp = Blueprint("metrics", __name__)
log = logging.getLogger("mailer.request")

QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "(unmatched)"  # no route: a 404 or a refused method; never the path itself
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def allowed(settings, remote_addr: str | None, authorization: str | None) -> bool:
    """Whether a client may read the metrics (see the module docstring)."""
    try:
        client = ipaddress.ip_address((remote_addr or "").split("%")[0])
    except ValueError:
        client = None
    if client is not None:
        if getattr(client, "ipv4_mapped", None):
            client = client.ipv4_mapped
        if any(client in net for net in settings.metrics_allow if client.version == net.version):
            return True
    token = settings.metrics_token
    if token and authorization and authorization.startswith("Bearer "):
        return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())
    return False


@bp.get("/metrics")
def metrics():
    runtime = rt()
    if not allowed(runtime.settings, request.remote_addr, request.headers.get("Authorization")):
        if runtime.settings.metrics_token:
            return Response(
                "A bearer token (METRICS_TOKEN) is needed to read the metrics.\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
                mimetype="text/plain",
            )
        return Response(
            "Metrics are served only to the networks in METRICS_ALLOW.\n",
            403,
            {"Cache-Control": "no-store"},
            mimetype="text/plain",
        )

    body, content_type = render(runtime)
    return Response(body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"})


def _request_id(trust_proxy: bool) -> str:
    given = request.headers.get("X-Request-ID", "") if trust_proxy else ""
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def install(app: Flask, settings) -> None:
    """Register ``/metrics`` and the per-request id, latency and log line on ``app``."""
    app.register_blueprint(bp)
    trust_proxy = bool(settings.trusted_proxies)

    @app.before_request
    def _start():
        logs.clear()
        g.request_id = _request_id(trust_proxy)
        g.request_started = time.perf_counter()
        logs.bind(request_id=g.request_id)

    @app.after_request
    def _finish(resp):
        started = g.get("request_started")
        if started is None:  # a before_request hook ahead of ours answered
            return resp
        seconds = time.perf_counter() - started
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        method = request.method if request.method in events.HTTP_METHODS else "other"
        events.request(route, method, resp.status_code, seconds)
        resp.headers["X-Request-ID"] = g.request_id
        if route not in QUIET_ROUTES:
            log.info(
                "%s %s %s %.1f ms",
                method,
                route,
                resp.status_code,
                seconds * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "status": resp.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
        return resp

    @app.teardown_request
    def _forget(_exc):
        logs.clear()
