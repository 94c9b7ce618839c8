"""Observability: the ``/stats`` schema, Prometheus text, the HTTP endpoints and the
``xcol report`` command."""
