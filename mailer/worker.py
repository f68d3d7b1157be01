"""Entry module for `dramatiq mailer.worker`: configures the runtime, declares the actors."""
from mailer import runtime

runtime.configure()

from mailer.delivery import actors  # noqa: E402,F401
from mailer.delivery import inbound_actors  # noqa: E402,F401
from mailer.delivery import partner_actors  # noqa: E402,F401
from mailer.delivery import scheduled_actors  # noqa: E402,F401
from subscribers import tasks  # noqa: E402,F401
