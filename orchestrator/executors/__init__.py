"""Executors: how launched steps run (in-process, multiprocess, Celery)."""
