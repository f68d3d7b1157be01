"""The Flask application factory: wiring only, no business logic."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer.boot import boot
from mailer.logs import configure_logging
from mailer.mail.transport import Transport
from mailer.settings import Settings
from mailer.web import access_log, console, csrf
from mailer.web import metrics as web_metrics
from mailer.web.api import bp as api_bp
from mailer.web.api import http_error
from mailer.web.digest import bp as digest_bp
from mailer.web.groups import bp as groups_bp
from mailer.web.health import bp as health_bp
from mailer.web.partners import bp as partners_bp
from mailer.web.subscribers import bp as subscribers_bp

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def create_app(settings: Settings, transport: Transport | None = None) -> Flask:
    """Boot the process over ``settings`` (:func:`mailer.boot.boot`: database, transport,
    queue) and build the web app on it. Views reach the runtime through
    :func:`mailer.runtime.current`."""
    rt = boot(settings, transport=transport)
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(
        SECRET_KEY=rt.settings.secret_key,
        SECRET_KEY_FALLBACKS=list(rt.settings.secret_key_fallbacks),
        MAX_CONTENT_LENGTH=256 * 1024,  # forms are small; refuse anything bigger outright
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session cookie
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=rt.settings.base_url.startswith("https://"),
    )
    if rt.settings.trusted_proxies:
        # Behind N proxies the peer is the nearest proxy; the client is the Nth address from
        # the right of X-Forwarded-For. Anything further left was written by the client and
        # is never believed. Without proxies the headers are ignored entirely.
        n = rt.settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    access_log.install(app.logger)  # log routes, never the tokens in them
    configure_logging(rt.settings)
    web_metrics.install(app, rt.settings)  # /metrics; request ids, latency and one log line per request
    csrf.init_app(app)
    app.register_blueprint(subscribers_bp)
    app.register_blueprint(partners_bp)
    app.register_blueprint(digest_bp)
    app.register_blueprint(groups_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(health_bp)
    console.init_app(app, rt.settings)  # /admin, and the security headers every page carries
    csrf.exempt(api_bp)  # bearer tokens, no cookies: CSRF cannot apply

    @app.errorhandler(404)
    def not_found(_e):
        return render_template("error.html", title="Page not found", message="There is nothing at this address."), 404

    @app.errorhandler(413)
    def too_large(e):
        if request.path.startswith("/api/"):
            return http_error(e)
        return render_template(
            "error.html", title="Too much data", message="That request was too large to accept."
        ), 413

    @app.errorhandler(CSRFError)
    def csrf_failed(_e):
        return render_template(
            "error.html",
            title="Please try again",
            message="This form expired or was not sent from our page. Go back, reload the page and send it again.",
        ), 400

    @app.errorhandler(400)
    def bad_request(e):
        return render_template(
            "error.html", title="Something was wrong with that request", message=getattr(e, "description", "")
        ), 400

    @app.after_request
    def security_headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")  # tokens live in our URLs
        resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp  # the Content-Security-Policy: mailer.web.security_headers

    return app
