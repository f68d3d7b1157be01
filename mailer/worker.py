"""Entry module of ``dramatiq mailer.worker``: importing it boots the process.

Booting on import is this module's one purpose (the ``dramatiq`` command imports it and
then uses the broker it set); no other module imports it. Settings come from the
environment, as in every entry point.
"""
from mailer.boot import boot
from mailer.settings import Settings

broker = boot(Settings.from_env()).queue.broker
