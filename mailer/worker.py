"""Entry module for `dramatiq mailer.worker`: configures the runtime, declares the actors."""
from mailer import runtime
from mailer.logs import configure_logging

_rt = runtime.configure()
configure_logging(_rt.settings)

from mailer.delivery import actors  # noqa: E402,F401
from mailer.delivery import partner_actors  # noqa: E402,F401
from mailer.delivery import scheduled_actors  # noqa: E402,F401
from subscribers import tasks  # noqa: E402,F401

from mailer.broker import broker  # noqa: E402
from mailer.metrics.workers import serve_metrics  # noqa: E402

serve_metrics(broker, _rt.settings)  # Dramatiq's Prometheus middleware, when WORKER_METRICS is set
