"""The Celery side, kept thin: the task functions a worker runs (``workers.tasks``) and an app
object for Celery's own command-line tools (``workers.celery_app``).

Everything else a worker does (claiming attempts, heartbeats, running the step, reporting) is
in ``orchestrator.distributed``; the orchestrator package never imports this one.
"""
