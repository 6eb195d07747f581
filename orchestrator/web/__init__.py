"""The web application: a JSON API under ``/api``, live run events as server-sent events,
Prometheus metrics at ``/metrics``, and the pages of the UI (``orchestrator ui``).

``app.create_app`` builds one FastAPI app from a :class:`~orchestrator.web.state.WebState` (the
shared Redis instance and the code locations it offers jobs from). Pages are static HTML with a
little JavaScript that calls the same API a script would; nothing needs Node to install.
"""
