"""``orchestrator server ...``: the embedded Valkey server that stores runs when no
``ORCHESTRATOR_REDIS_URL`` is set.

Commands that need shared state start it on first use (``orchestrator.embedded``); these
commands show, start and stop it. Its data stays under ``ORCHESTRATOR_HOME`` when it stops, and
the next command that needs it starts it again with the same runs.
"""

from __future__ import annotations

import click
from rich.console import Console

from orchestrator.cli.common import BadInput, make_console, redact_url
from orchestrator.embedded import EmbeddedServer, EmbeddedServerError
from orchestrator.settings import Settings, get_settings


@click.group("server")
def server() -> None:
    """The embedded Valkey server that stores runs when ORCHESTRATOR_REDIS_URL is not set."""


def _note_configured_url(out: Console, settings: Settings) -> None:
    if settings.redis_url:
        out.print(
            f"ORCHESTRATOR_REDIS_URL is set ({redact_url(settings.redis_url)}): commands use "
            "that server, and the embedded server is not used.",
            markup=False,
        )


@server.command("status", short_help="Say whether the embedded server runs, and where.")
def status_command() -> None:
    """Print the embedded server's URL and data directory, or that it is not running (exit
    code 0 either way)."""
    settings = get_settings()
    embedded = EmbeddedServer(settings.home)
    out = make_console()
    _note_configured_url(out, settings)
    url = embedded.url()
    if url:
        out.print(f"Embedded server running at {url} (data in {embedded.dir})", markup=False)
    else:
        out.print(f"Embedded server not running (data in {embedded.dir})", markup=False)


@server.command("start", short_help="Start the embedded server (or find it running).")
def start_command() -> None:
    """Start the embedded server in the background, or find it already running, and print its
    URL. Exit code 2 if it cannot be started (the message points at its log)."""
    settings = get_settings()
    embedded = EmbeddedServer(settings.home)
    out = make_console()
    _note_configured_url(out, settings)
    was_running = embedded.url() is not None
    try:
        url = embedded.ensure()
    except EmbeddedServerError as exc:
        raise BadInput(str(exc)) from exc
    verb = "already running" if was_running else "started"
    out.print(f"Embedded server {verb} at {url} (data in {embedded.dir})", markup=False)


@server.command("stop", short_help="Stop the embedded server (its data is kept).")
def stop_command() -> None:
    """Stop the embedded server; its runs stay on disk under ORCHESTRATOR_HOME and are there
    again when a later command starts it. Exit code 0 also when it was not running."""
    settings = get_settings()
    embedded = EmbeddedServer(settings.home)
    out = make_console()
    _note_configured_url(out, settings)
    if embedded.stop():
        out.print(f"Stopped the embedded server (data kept in {embedded.dir})", markup=False)
    else:
        out.print("The embedded server was not running.", markup=False)
