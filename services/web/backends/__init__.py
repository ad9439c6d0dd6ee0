"""One client per backend, created at startup and closed at cleanup (``app.cleanup_ctx``).

Every call goes through ``BackendCall.run``: a timeout, a bound on concurrent calls, and
one record in the live stats and the Prometheus metrics, whatever the outcome.
"""
