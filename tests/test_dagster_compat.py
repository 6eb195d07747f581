"""A Dagster op-job file runs unchanged except ``from dagster import`` -> ``from orchestrator
import``.

``tests/dagster_style_job.py`` is such a file. These tests check that it uses nothing but
Dagster's public names, run it as a script, and compare what it prints with what Dagster
prints for the same file. Set ``ORCHESTRATOR_TEST_DAGSTER_PYTHON`` to a Python that has Dagster
installed to also run the file under Dagster itself.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JOB_FILE = ROOT / "tests" / "dagster_style_job.py"

# Names the file may import: all of them exist in ``dagster`` with the same meaning.
DAGSTER_NAMES = {
    "Config",
    "ConfigurableResource",
    "Definitions",
    "Field",
    "HookContext",
    "In",
    "Nothing",
    "Out",
    "Output",
    "ResourceDefinition",
    "RetryPolicy",
    "RunConfig",
    "config_mapping",
    "graph",
    "job",
    "op",
    "static_partitioned_config",
    "success_hook",
}

# What the file prints; Dagster 1.13 prints exactly the same lines for it.
EXPECTED_STDOUT = """\
do_stuff add_one: 6
my_job *add_two add_two: 3
my_job add_two+ multi_three: 21
do_stuff_local: pong
do_stuff_prod succeeded: True
default config: stuff
config mapping: stuff
numbers evens: [2, 4, 6]
numbers difference: 8
numbers announce: done
hooks ran for: ['announce', 'difference', 'read_numbers', 'split', 'total_evens', 'total_odds']
failing_job success: False
failing_job raised: ValueError True
regions eu: eu/eu
jobs: ['do_stuff', 'my_job', 'do_stuff_prod', 'do_stuff_local', 'regions_job']
done
"""


def _code_without_docstrings(tree: ast.Module) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body.pop(0)
    return ast.unparse(tree)


def test_file_imports_only_dagster_names_from_orchestrator() -> None:
    text = JOB_FILE.read_text()
    tree = ast.parse(text)

    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]

    assert "from orchestrator import" in text
    assert len(imports) == 1, "the only import is the one `from dagster import` becomes"
    (imp,) = imports
    assert isinstance(imp, ast.ImportFrom)
    assert imp.module == "orchestrator"
    imported = {alias.name for alias in imp.names}
    assert imported <= DAGSTER_NAMES, imported - DAGSTER_NAMES
    assert all(alias.asname is None for alias in imp.names)


def test_file_mentions_orchestrator_only_in_its_import() -> None:
    # Comments and docstrings aside, "orchestrator" appears once: in the import line.
    code = _code_without_docstrings(ast.parse(JOB_FILE.read_text()))

    assert code.count("orchestrator") == 1


def test_file_runs_as_a_script() -> None:
    proc = subprocess.run(
        [sys.executable, str(JOB_FILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == EXPECTED_STDOUT


def test_file_loads_as_a_code_location(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.definitions.reconstruct import load_file

    monkeypatch.chdir(ROOT)
    module = load_file("tests/dagster_style_job.py")

    assert module.defs.job_names == [
        "do_stuff",
        "my_job",
        "do_stuff_prod",
        "do_stuff_local",
        "do_it_all_with_default_config",
        "do_it_all_with_simplified_config",
        "numbers_job",
        "failing_job",
        "regions_job",
    ]


@pytest.mark.skipif(
    not os.environ.get("ORCHESTRATOR_TEST_DAGSTER_PYTHON"),
    reason="set ORCHESTRATOR_TEST_DAGSTER_PYTHON to a Python with dagster installed",
)
def test_same_output_under_dagster(tmp_path: Path) -> None:
    dagster_python = os.environ["ORCHESTRATOR_TEST_DAGSTER_PYTHON"]
    converted = tmp_path / "dagster_job.py"
    converted.write_text(
        JOB_FILE.read_text().replace("from orchestrator import", "from dagster import")
    )

    proc = subprocess.run(
        [dagster_python, str(converted)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == EXPECTED_STDOUT
