"""What the fault suite's ops record, and how tests read it back.

Every op body leaves a *mark* when it starts (a small JSON file: run, step, process, worker,
time), so a test counts how many times each step body really ran, whatever the event log
says. Ops that test concurrency limits also go through a *gauge* (``tests.gauge``): bodies
running at once per bucket, and the highest count seen. Both live under the directory named by
``ORCHESTRATOR_FAULT_DIR``, which every process of a test deployment shares.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from tests.gauge import Gauge

DIR_ENV = "ORCHESTRATOR_FAULT_DIR"
WORKER_ENV = "ORCHESTRATOR_TEST_WORKER"


def fault_dir() -> Path:
    return Path(os.environ[DIR_ENV])


def leave_mark(run_id: str, step_key: str, **extra: Any) -> None:
    """Record that a body of ``step_key`` in ``run_id`` started, here and now."""
    folder = fault_dir() / "marks"
    folder.mkdir(parents=True, exist_ok=True)
    mark = {
        "run_id": run_id,
        "step_key": step_key,
        "pid": os.getpid(),
        "worker": os.environ.get(WORKER_ENV, "driver"),
        "time": time.time(),
        **extra,
    }
    name = f"{run_id}.{step_key}.{uuid.uuid4().hex[:8]}.json"
    tmp = folder / f"{name}.tmp"  # not matched by the readers' ``*.json``
    tmp.write_text(json.dumps(mark))
    tmp.rename(folder / name)  # a reader never sees half a mark


def marks(root: Path) -> list[dict[str, Any]]:
    folder = root / "marks"
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in folder.glob("*.json")]


def body_counts(root: Path, run_ids: list[str] | None = None) -> Counter[tuple[str, str]]:
    """(run id, step key) -> how many times its body started."""
    wanted = set(run_ids) if run_ids is not None else None
    return Counter(
        (m["run_id"], m["step_key"]) for m in marks(root) if wanted is None or m["run_id"] in wanted
    )


def gauge() -> Gauge:
    """The gauge of the deployment (see ``tests.gauge``)."""
    return Gauge(fault_dir())


def gauge_peaks(root: Path) -> dict[str, int]:
    return Gauge(root).peaks()
