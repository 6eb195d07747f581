"""The Celery side: an app built from settings, the step task, and worker start-up.

Thin on purpose: a message becomes a call of the step runner, and the step's events go back to
the run's event stream in Redis.
"""
