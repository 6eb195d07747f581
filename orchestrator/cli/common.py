"""What every command shares: exit codes, the instance, consoles, options and their parsing.

Exit codes (SPEC §7): 0 success, 1 the run failed, 2 bad input. Bad input is any error of the
project's tree that says the user asked for something that cannot be (unknown job or op, invalid
config, unimportable code location, ...); commands wrap their work in :func:`bad_input_exits` and
it is printed as one message on stderr, without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console

from orchestrator.definitions.config import deep_merge
from orchestrator.errors import (
    CodeLocationError,
    DefinitionError,
    InvalidInputError,
    ReconstructionError,
)
from orchestrator.redis_client import redact_url
from orchestrator.storage.base import Instance

EXIT_SUCCESS = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2

# Errors that mean "the input was wrong", whatever command meets them.
BAD_INPUT_ERRORS: tuple[type[Exception], ...] = (
    InvalidInputError,  # config, selection, missing input or resource, partition key
    CodeLocationError,
    ReconstructionError,
    DefinitionError,
)

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(click.ClickException):
    """Printed as ``Error: <message>`` on stderr; exit code 2."""

    exit_code = EXIT_BAD_INPUT


class RunFailed(click.ClickException):
    """Printed as ``Error: <message>`` on stderr; exit code 1."""

    exit_code = EXIT_RUN_FAILED


@contextmanager
def bad_input_exits() -> Iterator[None]:
    """Turn the project's bad-input errors raised inside the block into exit code 2."""
    try:
        yield
    except BAD_INPUT_ERRORS as exc:
        raise BadInput(str(exc)) from exc


# How long a one-shot command keeps retrying when Redis stops answering mid-command.
ONE_SHOT_PATIENCE_SECONDS = 30.0
PING_SECONDS = 5.0  # how long a command waits for a server to answer at start-up


def get_instance(
    patience: float | None = ONE_SHOT_PATIENCE_SECONDS, wait_for_server: float = 0.0
) -> Instance:
    """The shared, persistent instance commands store runs in (``Instance.from_settings()``).

    ``ORCHESTRATOR_REDIS_URL`` when set; otherwise the embedded Valkey server under
    ``ORCHESTRATOR_HOME``, started on first use and reused by later commands, so ``run list``
    in a new process sees the runs of earlier ones. The server is pinged once (with a short
    timeout) before the instance is handed out, so an unreachable one is reported here, once.

    Args:
        patience: once connected, how long a command rides out an outage before it gives up
            (None: as long as it takes, for long-lived commands).
        wait_for_server: how long to keep trying when the server does not answer at start
            (0: exit at once), for commands whose effect must not be lost (``run cancel``).

    Raises:
        BadInput: the configured server does not answer, its URL is malformed, or the embedded
            server cannot be started (exit 2, with a message naming the URL or the log).
    """
    from orchestrator.embedded import EmbeddedServerError
    from orchestrator.settings import get_settings
    from orchestrator.storage.redis import RedisInstance

    settings = get_settings()
    try:
        url = settings.resolved_redis_url()
    except EmbeddedServerError as exc:
        raise BadInput(f"cannot start the embedded server: {exc}") from exc
    ping_server(url, redis_url_source(settings), wait_for_server)
    return RedisInstance.from_url(url, settings.key_prefix, patience=patience)


def ping_broker(url: str) -> None:
    """Check that the Celery broker at ``url`` accepts a connection (a Redis URL is pinged),
    or raise :class:`BadInput` naming it (password masked)."""
    from orchestrator.distributed.celery_app import is_redis_broker

    if is_redis_broker(url):
        ping_server(url, "ORCHESTRATOR_BROKER_URL")
        return
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=PING_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, timeout=PING_SECONDS)
    except Exception as exc:
        raise BadInput(
            f"cannot reach the broker at {redact_url(url)} (ORCHESTRATOR_BROKER_URL): {exc}"
        ) from exc


def redis_url_source(settings: Any) -> str:
    """Where the Redis URL came from, for messages."""
    return "ORCHESTRATOR_REDIS_URL" if settings.redis_url else "embedded server"


def ping_server(url: str, source: str, wait: float = 0.0) -> None:
    """Check that the Redis server at ``url`` answers, or raise :class:`BadInput` naming the URL
    (password masked) and where it came from (``source``). With ``wait``, keep trying that many
    seconds first (saying so once on stderr)."""
    import time

    import redis

    from orchestrator.redis_client import ping_once

    shown = redact_url(url)
    deadline = time.monotonic() + wait
    while True:
        try:
            ping_once(url)
            return
        except ValueError as exc:  # malformed URL (scheme, port, ...)
            raise BadInput(f"{source} is not a valid Redis URL: {shown} ({exc})") from exc
        except redis.RedisError as exc:
            if time.monotonic() >= deadline:
                raise BadInput(f"cannot reach Redis at {shown} ({source}): {exc}") from exc
            if wait:
                make_console(stderr=True).print(
                    f"Redis at {shown} does not answer ({exc}); trying again for up to "
                    f"{wait:.0f} s (Ctrl-C to give up)",
                    markup=False,
                )
                wait = 0.0  # said once
            time.sleep(0.5)  # the server is down: nothing to wait on but a retry


def make_console(*, stderr: bool = False, min_width: int | None = None) -> Console:
    """A rich console on stdout (or stderr) that never re-wraps long lines (error messages and
    config paths stay greppable) and does not guess syntax highlighting.

    Args:
        stderr: write to stderr.
        min_width: when the output is not a terminal (a pipe, a file), lay tables out at least
            this wide rather than rich's default of 80 columns, so run ids are never cut.
    """
    console = Console(stderr=stderr, soft_wrap=True, highlight=False)
    if min_width is not None and not console.is_terminal and console.width < min_width:
        console.width = min_width
    return console


# -- options ---------------------------------------------------------------------------------


def location_options(f: F) -> F:
    """``-f FILE | -m MODULE``: the code location (check with :func:`require_location`)."""
    f = click.option(
        "-m",
        "--module",
        "module",
        metavar="MODULE",
        help="Importable module holding the job (the working directory is on the path).",
    )(f)
    f = click.option(
        "-f",
        "--file",
        "file",
        metavar="FILE",
        help="Python file holding the job, relative to the working directory.",
    )(f)
    return f


def job_option(f: F) -> F:
    """``-j JOB``: which job of the location (optional when it holds only one)."""
    return click.option(
        "-j",
        "--job",
        "job_name",
        metavar="JOB",
        help="Job to run; needed when the code location holds several.",
    )(f)


def require_location(file: str | None, module: str | None) -> None:
    """Exactly one of ``-f`` and ``-m``, or a usage error (exit 2)."""
    if file is None and module is None:
        raise click.UsageError("name the code location with -f FILE or -m MODULE")
    if file is not None and module is not None:
        raise click.UsageError("give -f FILE or -m MODULE, not both")


def run_options(f: F) -> F:
    """``-c CONFIG.yaml ...``, ``--op-selection``, ``--partition``, ``--tags JSON``: how a run
    is launched. The callbacks hand the command parsed values (dict, tuple, dict)."""
    f = click.option(
        "--tags",
        "tags",
        metavar="JSON",
        callback=_tags_callback,
        help='Run tags as a JSON object of strings, e.g. \'{"team": "data"}\'.',
    )(f)
    f = click.option(
        "--partition",
        "partition",
        metavar="KEY",
        help="Partition key to run (partitioned jobs).",
    )(f)
    f = op_selection_option(f)
    f = click.option(
        "-c",
        "--config",
        "run_config",
        metavar="CONFIG.yaml",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        callback=_config_callback,
        help="YAML run config file; repeat to merge several (later files win).",
    )(f)
    return f


def op_selection_option(f: F) -> F:
    """``--op-selection QUERY ...``: the command gets a list of clauses, or None for all ops."""
    return click.option(
        "--op-selection",
        "op_selection",
        metavar="QUERY",
        multiple=True,
        callback=_selection_callback,
        help="Ops to run, e.g. '*add_one' or 'a+,b' (repeatable or comma-separated; the "
        "union is run).",
    )(f)


def load_run_config(paths: Sequence[str]) -> dict[str, Any] | None:
    """Read and deep-merge YAML run config files in order (later wins); None when none given.

    Raises:
        BadInput: a file cannot be read, is not valid YAML (the message names its line), or
            does not hold a mapping.
    """
    if not paths:
        return None
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise BadInput(f"cannot read run config {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise BadInput(yaml_problem(path, exc)) from exc
        if data is None:
            continue  # an empty file adds nothing
        if not isinstance(data, Mapping):
            raise BadInput(
                f"run config {path} must hold a mapping (ops:, resources:, execution:, ...), "
                f"not a {type(data).__name__}"
            )
        merged = deep_merge(merged, data)
    return merged


def yaml_problem(path: str, exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: file, line and column, and what is wrong there."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else path
    what = problem or str(exc).splitlines()[0]
    if context:
        what = f"{what} ({context})"
    return f"{where}: not valid YAML: {what}"


def parse_tags(text: str | None) -> dict[str, str] | None:
    """Parse ``--tags``: a JSON object whose keys and values are strings.

    Raises:
        click.BadParameter: not JSON, not an object, or a value is not a string.
    """
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON ({exc.msg} at position {exc.pos}): {text}"
        ) from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"must be a JSON object, got {type(data).__name__}: {text}")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise click.BadParameter(
            f"tag values must be strings; not for {', '.join(repr(k) for k in bad)} "
            '(quote them: {"retries": "3"})'
        )
    return data


def parse_op_selection(values: Sequence[str]) -> list[str] | None:
    """Flatten repeated and comma-separated ``--op-selection`` values into clauses."""
    clauses = [c.strip() for value in values for c in value.split(",")]
    clauses = [c for c in clauses if c]
    return clauses or None


def _config_callback(
    ctx: click.Context, param: click.Parameter, value: Sequence[str]
) -> dict[str, Any] | None:
    return load_run_config(value)


def _tags_callback(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> dict[str, str] | None:
    return parse_tags(value)


def _selection_callback(
    ctx: click.Context, param: click.Parameter, value: Sequence[str]
) -> list[str] | None:
    return parse_op_selection(value)
