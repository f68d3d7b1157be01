"""Entry module of ``dramatiq mailer.worker``: importing it boots the process.

Booting on import is this module's one purpose (the ``dramatiq`` command imports it and
then uses the broker it set); no other module imports it. Settings come from the
environment, as in every entry point.
"""

from mailer.boot import boot
from mailer.logs import configure_logging
from mailer.metrics.workers import serve_metrics
from mailer.settings import Settings

_rt = boot(Settings.from_env())
configure_logging(_rt.settings)
broker = _rt.queue.broker
serve_metrics(broker, _rt.settings)  # Dramatiq's Prometheus middleware, when WORKER_METRICS is set
