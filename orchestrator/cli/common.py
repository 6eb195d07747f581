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


def get_instance() -> Instance:
    """The shared, persistent instance commands store runs in (``Instance.from_settings()``).

    ``ORCHESTRATOR_REDIS_URL`` when set; otherwise the embedded Valkey server under
    ``ORCHESTRATOR_HOME``, started on first use and reused by later commands, so ``run list``
    in a new process sees the runs of earlier ones. The server is pinged (with a short timeout)
    before the instance is handed out, so an unreachable one is reported here, once.

    Raises:
        BadInput: the configured server does not answer, its URL is malformed, or the embedded
            server cannot be started (exit 2, with a message naming the URL or the log).
    """
    from orchestrator.embedded import EmbeddedServerError, resolve_redis_url
    from orchestrator.settings import get_settings

    settings = get_settings()
    try:
        url = resolve_redis_url(settings)
    except EmbeddedServerError as exc:
        raise BadInput(f"cannot start the embedded server: {exc}") from exc
    ping_server(url, "ORCHESTRATOR_REDIS_URL" if settings.redis_url else "embedded server")
    return Instance.from_url(url, settings.key_prefix)


# How long a command waits for the server to accept a connection and answer PING.
PING_TIMEOUT_SECONDS = 5.0


def ping_server(url: str, source: str) -> None:
    """Check that the Redis server at ``url`` answers, or raise :class:`BadInput` naming the URL
    (password masked) and where it came from (``source``)."""
    import redis

    shown = redact_url(url)
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=PING_TIMEOUT_SECONDS, socket_timeout=PING_TIMEOUT_SECONDS
        )
    except ValueError as exc:  # malformed URL (scheme, port, ...)
        raise BadInput(f"{source} is not a valid Redis URL: {shown} ({exc})") from exc
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BadInput(f"cannot reach Redis at {shown} ({source}): {exc}") from exc
    finally:
        client.close()


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to print)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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
        click.BadParameter: a file is not valid YAML or does not hold a mapping.
    """
    if not paths:
        return None
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"{path} is not valid YAML: {exc}") from exc
        if data is None:
            continue  # an empty file adds nothing
        if not isinstance(data, Mapping):
            raise click.BadParameter(
                f"{path} must hold a mapping (ops:, resources:, execution:, ...), "
                f"not a {type(data).__name__}"
            )
        merged = deep_merge(merged, data)
    return merged


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
