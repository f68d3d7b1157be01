"""Security headers on every response.

Public pages get :data:`PUBLIC_CSP`: everything from our own origin only, no inline
script or style at all (their stylesheet is ``static/public.css``), and
``frame-ancestors 'none'`` wherever the page refuses framing anyway. A page that sets its
own policy keeps it (an email's HTML served as a page; the console's stricter one, see
:func:`console_headers`). HSTS is sent when ``BASE_URL`` is https.
"""

from __future__ import annotations

from flask import Flask, Response

HSTS = "max-age=31536000; includeSubDomains"

# Public pages: our origin only; no inline script or style, no plugins, forms only to us.
PUBLIC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; form-action 'self'"
)

# No inline script or style at all, nothing from elsewhere, no framing, forms only to us.
# Frames only from us: the outbox viewer shows an email in a sandboxed frame.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# An email's own HTML, shown inside a console page: its styles are inline (as email needs),
# it runs nothing (``sandbox`` without allow-scripts, even when opened on its own), and
# only console pages may frame it.
EMAIL_FRAME_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'none'; frame-ancestors 'self'; base-uri 'none'"
)


def console_headers(resp: Response) -> Response:
    """The console's headers: strict policy, no framing, and nothing cached (its pages show
    personal data and one-time secrets). A response marked ``email_frame`` (an email's
    HTML for the outbox viewer's frame) gets :data:`EMAIL_FRAME_CSP` and may be framed by
    the console itself."""
    frame = getattr(resp, "email_frame", False)
    resp.headers["Content-Security-Policy"] = EMAIL_FRAME_CSP if frame else CONSOLE_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN" if frame else "DENY"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def install(app: Flask, *, https: bool) -> None:
    @app.after_request
    def _every_page(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Content-Security-Policy", PUBLIC_CSP)
        csp = resp.headers.get("Content-Security-Policy")
        if csp and "frame-ancestors" not in csp and resp.headers["X-Frame-Options"] == "DENY":
            resp.headers["Content-Security-Policy"] = f"{csp}; frame-ancestors 'none'; base-uri 'none'"
        if https:
            resp.headers.setdefault("Strict-Transport-Security", HSTS)
        return resp
