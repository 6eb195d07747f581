"""The README's two commands: CI runs the test command verbatim, and both are at the top."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r'^readme_test_command="(.+)"$', ci, re.M)
    assert match, ".ci/run must name the README's test command"
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.+?)\n```", readme, re.S)
    assert blocks[1] == match.group(1)
    assert 'bash -c "$readme_test_command"' in ci


def test_the_first_command_runs_an_example_job() -> None:
    readme = (ROOT / "README.md").read_text()
    first = re.findall(r"```sh\n(.+?)\n```", readme, re.S)[0]
    assert "orchestrator job execute -f examples/" in first
    target = first.split("-f ", 1)[1].split()[0]
    assert (ROOT / target).is_file()
