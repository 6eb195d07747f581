"""``orchestrator ui``: the web UI and HTTP API (uvicorn serving ``orchestrator.web``)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

import click

from orchestrator.cli.common import BadInput, bad_input_exits, get_instance, make_console
from orchestrator.cli.worker import code_location_options, code_locations

DEFAULT_PORT = 3000
# How long an API request rides out a Redis outage before it answers with an error.
REQUEST_PATIENCE_SECONDS = 10.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them (``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(host: str, token: str, allow_no_token: bool) -> None:
    """Refuse to serve beyond loopback without a token, unless told so explicitly."""
    if token or allow_no_token or is_loopback(host):
        return
    raise BadInput(
        f"refusing to serve on {host} without a token: anyone who reaches it could launch "
        "and cancel runs. Set ORCHESTRATOR_API_TOKEN (the UI and API then ask for it), or "
        "pass --insecure-no-token if the network is already closed to others."
    )


def build_server(
    files: tuple[str, ...], modules: tuple[str, ...], host: str, port: int, instance: Any = None
) -> Any:
    """A uvicorn server for the web app (not started); loads the code locations first."""
    import uvicorn

    from orchestrator.settings import get_settings
    from orchestrator.web.app import create_app
    from orchestrator.web.state import Catalog, WebState

    settings = get_settings()
    locations = code_locations(files, modules)
    catalog = Catalog(locations)
    catalog.jobs()  # load now: a broken location is reported on the jobs page
    if instance is None:
        instance = get_instance(patience=REQUEST_PATIENCE_SECONDS)
    state = WebState(instance, catalog, settings, settings.api_token)
    config = uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class BackgroundServer:
    """The UI server in a daemon thread (for ``orchestrator dev``)."""

    def __init__(self, server: Any):
        self.server = server
        self.thread = threading.Thread(target=server.run, name="orchestrator-ui", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@click.command("ui")
@code_location_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
@click.option(
    "--insecure-no-token",
    is_flag=True,
    help="Serve beyond loopback without ORCHESTRATOR_API_TOKEN (only on a closed network).",
)
def ui(
    files: tuple[str, ...], modules: tuple[str, ...], host: str, port: int, insecure_no_token: bool
) -> None:
    """Serve the web UI and the HTTP API (JSON under /api, live events, /metrics,
    /openapi.json) for the jobs of the given code locations (default:
    ORCHESTRATOR_CODE_LOCATIONS). Launched runs are driven by a coordinator
    (`orchestrator coordinator start`, or `orchestrator dev`, which also starts this UI).

    \b
    Examples:
      orchestrator ui -f examples/distributed.py
      ORCHESTRATOR_API_TOKEN=s3cret orchestrator ui -m my_jobs --host 0.0.0.0
    """
    from orchestrator.settings import get_settings

    with bad_input_exits():
        check_bind(host, get_settings().api_token, insecure_no_token)
        server = build_server(files, modules, host, port)
    make_console().print(
        f"orchestrator ui: serving on {url_for(host, port)} (Ctrl-C stops)", markup=False
    )
    server.run()
