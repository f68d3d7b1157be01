"""Security headers on every response.

Public pages get :data:`PUBLIC_CSP`: everything from our own origin only, no inline
script or style at all (their stylesheet is ``static/public.css``), and
``frame-ancestors 'none'`` wherever the page refuses framing anyway. A page that sets its
own policy keeps it (an email's HTML served as a page; the console's stricter one, see
:func:`console_headers`). HSTS is sent when ``BASE_URL`` is https.
"""

from __future__ import annotations

from flask import Flask, Response, g

HSTS = "max-age=31536000; includeSubDomains"

# Public pages: our origin only; no inline script or style, no plugins, forms only to us.
PUBLIC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; form-action 'self'"
)

# No inline script or style at all, nothing from elsewhere, no framing, forms only to us.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# An email's own HTML, shown inside a console page: its styles are inline (as email needs),
# it runs nothing (``sandbox`` without allow-scripts, even when opened on its own), and
# only console pages may frame it.
EMAIL_FRAME_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'none'; frame-ancestors 'self'; base-uri 'none'"
)


# A console page that frames our own email previews or an outbox message (the frames
# themselves are sandboxed and served with EMAIL_FRAME_CSP).
CONSOLE_FRAMING_CSP = CONSOLE_CSP + "; frame-src 'self'"
POLICIES = {
    "console": (CONSOLE_CSP, "DENY"),
    "framing": (CONSOLE_FRAMING_CSP, "DENY"),
    "email-frame": (EMAIL_FRAME_CSP, "SAMEORIGIN"),
}


def use_policy(name: str) -> None:
    """Give this console response another of :data:`POLICIES` (the preview page that frames
    an email, and the email frame itself); every other page keeps the strict one."""
    if name not in POLICIES:
        raise KeyError(name)
    g.console_policy = name


def console_headers(resp: Response) -> Response:
    """The console's headers: strict policy, no framing, and nothing cached (its pages show
    personal data and one-time secrets). A request that chose another policy with
    :func:`use_policy` (a page framing an email, the email's frame) gets that one."""
    csp, frame_options = POLICIES[g.get("console_policy", "console")]
    resp.headers["Content-Security-Policy"] = csp
    resp.headers["X-Frame-Options"] = frame_options
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
