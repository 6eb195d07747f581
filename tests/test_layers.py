"""The layer contract of pyproject.toml holds, and no import cycle spans two packages.

``lint-imports`` checks the contract in CI as well; running it here keeps the README's test
command covering it. The cycle check is stricter than the contract: modules of one package may
refer to each other (a graph makes a job, a job holds a graph), but a cycle through two
packages means a layer reaches up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_the_layer_contract_holds() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_spans_two_packages() -> None:
    graph = grimp.build_graph("orchestrator", "workers")
    crossing = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if _package(importer) == _package(imported):
                continue
            # an edge between packages is part of a cycle if it can be walked back
            if graph.chain_exists(importer=imported, imported=importer):
                crossing.append(f"{importer} -> {imported}")
    assert crossing == [], "imports that close a cycle across packages:\n" + "\n".join(crossing)
