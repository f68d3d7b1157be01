"""Prometheus metrics: what the service counts, where, and how it is served.

Two kinds of source, chosen by where the truth lives:

- **The database, read at scrape time** (:mod:`mailer.metrics.collectors`): deliveries by
  status per edition, bounces and complaints, the scheduler's runs, feed state, the
  leader, and queue depth (from Redis, or the in-process broker). Every web process and
  machine answers the same numbers, whichever one Prometheus reaches, and nothing is
  lost when a process restarts.
- **Events inside a process** (:mod:`mailer.telemetry`): messages handed to the
  relay, deferrals, rate-limit waits, feed polls, request latency. With
  ``PROMETHEUS_MULTIPROC_DIR`` set they use prometheus-client's multiprocess mode (one
  file per process in that directory, summed at scrape time), so gunicorn's worker
  processes answer together on ``/metrics``; the ``dramatiq`` worker processes of
  ``mailer worker`` write theirs to Dramatiq's directory, served with Dramatiq's own
  metrics by its Prometheus middleware on its own port (:mod:`mailer.metrics.workers`).
  Without it (one process: development, tests, embedded mode) they stay in memory.

``/metrics`` (:mod:`mailer.web.metrics`) serves the first kind and the web processes'
events; README's "Metrics" section lists every name.
"""
