"""For Celery's own tools only: ``celery -A workers.celery_app inspect ping`` and Flower.

They need an importable app object; this module builds one from the environment when it is
imported. The project itself never imports it (it builds apps with
``orchestrator.distributed.celery_app.create_app``), so its import order cannot matter.
"""

from __future__ import annotations

from orchestrator.distributed.celery_app import create_app

app = create_app()
