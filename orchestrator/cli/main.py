"""The ``orchestrator`` command: a click group whose subgroups live in ``orchestrator/cli/*.py``.

Subgroups are imported only when used (``orchestrator job ...`` does not import Celery), and
adding one is one line in :data:`COMMAND_GROUPS`.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

# Command name -> "module:attribute" of its click group.
COMMAND_GROUPS: dict[str, str] = {
    "job": "orchestrator.cli.job:job",
    "run": "orchestrator.cli.run:run",
    "server": "orchestrator.cli.server:server",
    "worker": "orchestrator.cli.worker:worker",
    "coordinator": "orchestrator.cli.coordinator:coordinator",
    "concurrency": "orchestrator.cli.concurrency:concurrency",
    "dev": "orchestrator.cli.dev:dev",
    "ui": "orchestrator.cli.ui:ui",
}


class LazyGroup(click.Group):
    """A group that imports its subcommands from ``lazy_subcommands`` on first use."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            module_name, attr = self.lazy_subcommands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy_subcommands[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy_subcommands=COMMAND_GROUPS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="orchestrator", prog_name="orchestrator")
def cli() -> None:
    """Run Dagster-style jobs here, in subprocesses, or on Celery workers.

    \b
    Exit codes: 0 success, 1 the run failed, 2 bad input (unknown job or op, invalid config,
    unreachable code location or server).

    \b
    Start with:
      orchestrator job list -f jobs.py
      orchestrator job execute -f jobs.py -j my_job -c config.yaml
    """


def show_outage_notices() -> None:
    """Print the one line that says Redis stopped answering (and the one that says it is back)
    on stderr, whatever else configures logging: every command rides out outages, and its
    user must see why it is waiting."""
    notices = logging.getLogger("orchestrator.redis")
    if not notices.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("orchestrator: %(message)s"))
        notices.addHandler(handler)
        notices.setLevel(logging.WARNING)
        notices.propagate = False


def main() -> None:
    """Console-script entry point."""
    show_outage_notices()
    cli(prog_name="orchestrator")


if __name__ == "__main__":
    main()
