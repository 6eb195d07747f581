"""Shared test set-up: the repository root is importable (``tests.fixtures`` is a code location
that subprocesses and workers load by module name), and every test gets its own
``ORCHESTRATOR_HOME`` so the filesystem IO manager writes under a temporary directory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.embedded import EmbeddedServer

REPO_ROOT = Path(__file__).resolve().parent.parent

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

pytest_plugins = ["tests.servers", "tests.celery_support", "tests.web_support"]


@pytest.fixture(autouse=True)
def orchestrator_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "orchestrator_home"
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    monkeypatch.delenv("ORCHESTRATOR_STORAGE_URL", raising=False)
    yield home
    # A command run without ORCHESTRATOR_REDIS_URL starts the embedded server in this home:
    # never leave it running after the test.
    embedded = EmbeddedServer(home)
    if embedded.state_file.exists():
        embedded.stop()
