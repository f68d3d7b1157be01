"""Entry module for `dramatiq mailer.worker`: configures the runtime, declares the actors."""
from mailer import runtime

runtime.configure()

from mailer.delivery import (
    actors,  # noqa: E402,F401
    partner_actors,  # noqa: E402,F401
)
from subscribers import tasks  # noqa: E402,F401
