"""The README's two commands: CI runs the test command verbatim, and the first command really
runs the main job (its setup part aside: the test runs in an environment already set up)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r'^readme_test_command="(.+)"$', ci, re.M)
    assert match, ".ci/run must name the README's test command"
    assert readme_commands()[1] == match.group(1)
    assert 'bash -c "$readme_test_command"' in ci


def test_the_first_command_runs_the_main_job(orchestrator_home: Path) -> None:
    # Given the first command of the README, whose last part runs the job
    first = readme_commands()[0]
    run_part = first.split(" && ")[-1]
    argv = shlex.split(run_part)
    assert argv[0] == ".venv/bin/orchestrator", first
    # When that part runs in a fresh home with no server configured (the embedded default)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(orchestrator_home)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.main", *argv[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Then the run succeeds on a local worker pool started for it, and prints the total
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout
    assert "warehouse load done: 1000 rows" in done.stdout, done.stdout
    started = re.search(r"started a local worker pool \(pid (\d+),", done.stdout)
    assert started, done.stdout
    # and the pool is gone once the command has returned
    assert not Path(f"/proc/{started.group(1)}").exists()
